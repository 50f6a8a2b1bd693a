"""A level's trainings side by side in worker processes (the ``local`` launcher's workers).

The driver plans, records and analyses exactly as it does in process; only the trainings
themselves go to a ``TrainingPool``: a ``Planned`` item in, its ``TrainResult`` out. A
worker trains an item with the same ``Trainer.train_alone`` the driver would call, so the
results are those of an in-process run with the same threads. Its evaluations come back
as they are computed (the driver logs them: live metrics) and its progress as ticks.
Workers never touch the tracking store: the driver stays its only writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..pruning.masks import Mask
from ..training.result import TrainResult
from .experiment import Experiment
from .planner import Planned
from .progress import SilentProgress, Tick

ROW, TICK = "row", "tick"  # what a worker tells while it trains
TICK_SECONDS = 0.25  # a worker's progress ticks are at most this frequent

Told = Callable[[int, str, Any], None]
"""Called in the driver with (item index, ``ROW`` or ``TICK``, the row or the iteration)."""


@dataclass
class PooledResult:
    """A training done in a worker: its result, and the mask it ended with when dynamic
    sparse training moved it (else None: the planned mask stands)."""

    result: TrainResult
    mask: Mask | None = None


class TrainingPool(Protocol):
    """Worker processes that train planned items of an experiment, several at once."""

    size: int  # trainings at once

    def train(self, experiment: Experiment, items: Sequence[Planned],
              told: Told) -> Iterator[tuple[int, PooledResult | BaseException]]:
        """Train every item on some worker; yield ``(index, outcome)`` in index order as
        outcomes arrive, the outcome being what the training raised if it failed.
        ``told`` hears each item's evaluations and progress while it trains. Closing the
        iterator early stops the trainings still running."""
        ...


class WorkerProgress(SilentProgress):
    """A worker's progress: the iteration reached, told at most every ``TICK_SECONDS``."""

    def __init__(self, send: Callable[[str, Any], None]):
        super().__init__()
        self.send = send

    def begin(self, label: str, start: int, total: int) -> Tick:
        """A tick that tells the driver the iteration, now and then."""
        last = 0.0

        def tick(iteration: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= TICK_SECONDS:
                last = now
                self.send(TICK, iteration)

        return tick
