"""A level's trainings side by side in worker processes (the ``local`` launcher's workers).

The driver plans, records and analyses exactly as it does in process; only the trainings
themselves go to a ``TrainingPool`` (``lottery.trainer``): a ``Planned`` item in, its
``TrainResult`` out. A worker trains an item with the same ``Trainer.train_alone`` the
driver would call, so the results are those of an in-process run with the same threads.
Its evaluations come back as they are computed (the driver logs them: live metrics) and
its progress as ticks. Workers never touch the tracking store: the driver stays its only
writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..lottery.experiment import Experiment
from ..lottery.planner import Planned
from ..lottery.progress import SilentProgress, Tick
from ..lottery.rewind_search import CopyTraining
from ..lottery.rewinding import State
from ..lottery.trainer import ROW, TICK, PooledResult, Trainer

TICK_SECONDS = 0.25  # a worker's progress ticks are at most this frequent


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


def worker_trainer(experiment: Experiment, send: Callable[[str, Any], None],
                   ) -> Callable[[Planned | CopyTraining], PooledResult | State]:
    """In a worker process: what trains one item of ``experiment`` exactly as the driver
    would (``Trainer.train_alone``), telling ``send`` its rows and progress; or a copy of
    a rewind search (its final weights)."""
    model = experiment.build_model(experiment.spec.experiment.seed)
    trainer = Trainer(experiment, model, WorkerProgress(send), lambda item, row: send(ROW, row))
    moving = experiment.dynamic is not None  # a level-0 ticket's mask moves as it trains

    def train(item: Planned | CopyTraining) -> PooledResult | State:
        if isinstance(item, CopyTraining):  # a copy of ``rewind: auto``'s search
            return item.run(experiment, model)
        result = trainer.train_alone(item)
        return PooledResult(result, item.mask if moving and item.level == 0 else None)

    return train
