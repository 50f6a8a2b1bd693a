"""Training planned trainings: one network at a time, a level's networks as one
population, or side by side in worker processes. ``population_off`` is the one place that
chooses between the first two; a pool, when the launcher gives one, takes precedence."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..pruning.masks import Mask
from ..tracking.names import TICKET
from ..training.distributed import TrainingJob, group, send, together
from ..training.dynamic import MaskUpdater, UpdaterContext
from ..training.loop import Evaluated
from ..training.population import Member, train_population, why_not_batchable
from ..training.result import TrainResult
from ..training.single import train
from ..training.streaming import StreamedSplits
from ..training.tasks import is_classification
from .experiment import Experiment
from .planner import Planned
from .progress import Progress, Tick

ROW, TICK = "row", "tick"  # what a pooled training tells while it trains

Told = Callable[[int, str, Any], None]
"""Called in the driver with (item index, ``ROW`` or ``TICK``, the row or the iteration)."""


@dataclass
class PooledResult:
    """A training done in a worker: its result, and the mask it ended with when dynamic
    sparse training moved it (else None: the planned mask stands)."""

    result: TrainResult
    mask: Mask | None = None


class TrainingPool(Protocol):
    """What the trainer needs of worker processes that train planned items side by side
    (``lth_suite.parallel.worker_pool.WorkerPool`` is one)."""

    size: int  # trainings at once

    def train(self, experiment: Experiment, items: Sequence[Planned],
              told: Told) -> Iterator[tuple[int, PooledResult | BaseException]]:
        """Train every item on some worker; yield ``(index, outcome)`` in index order as
        outcomes arrive, the outcome being what the training raised if it failed.
        ``told`` hears each item's evaluations and progress while it trains. Closing the
        iterator early stops the trainings still running."""
        ...


def population_off(experiment: Experiment, model: torch.nn.Module) -> str | None:
    """Why a level's networks train one at a time, or None when they train as a population."""
    training = experiment.spec.training
    if training.population == "off":
        return "training.population is off"
    if not is_classification(experiment.config.task):
        return f"task '{experiment.spec.task.name}' trains one network at a time"
    if group() is not None:
        return "data-parallel training trains one network at a time"
    if isinstance(experiment.data, StreamedSplits):
        return "streamed data trains one network at a time"
    if training.population == "auto" and experiment.device.type != "cuda":
        return "on the CPU sequential training is measured to be faster"
    if training.compile or training.channels_last:
        option = "compile" if training.compile else "channels_last"
        return f"training.{option} applies to networks trained one at a time"
    if training.clip_grad_norm is not None:
        return "training.clip_grad_norm clips each network's own gradient norm"
    builder = experiment.config.build_optimizer
    if builder is not None and not getattr(builder, "elementwise", False):
        return (f"optimizer '{training.optimizer.name}' does not declare itself elementwise, "
                "so it could mix the networks of a population")
    blocker = why_not_batchable(model)
    if blocker:
        return f"{experiment.spec.model.name}: {blocker}"
    return None


class Trainer:
    """Trains lists of planned trainings of one experiment in its working model."""

    def __init__(self, experiment: Experiment, model: torch.nn.Module, progress: Progress,
                 evaluated: Callable[[Planned, dict[str, float]], None] | None = None,
                 pool: TrainingPool | None = None):
        self.experiment, self.model, self.progress = experiment, model, progress
        self.evaluated = evaluated  # told each evaluation of each training as it happens
        self.pool = pool  # worker processes that train a level's networks side by side
        self.ranks = group()
        self.why_not_population = (population_off(experiment, model) if pool is None
                                   else "the launcher's workers train one network each")
        choice = experiment.spec.training.population
        expected = choice == "on" or (choice == "auto" and experiment.device.type == "cuda")
        if self.why_not_population is not None and expected:  # asked for, or usual on a GPU
            progress.note(f"population training off: {self.why_not_population}")

    @property
    def population(self) -> bool:
        """Whether a level's trainings go together, as one population."""
        return self.why_not_population is None

    def train_on_workers(self, items: list[Planned],
                    ) -> Iterator[tuple[Planned, TrainResult | BaseException]]:
        """Train the items side by side on the pool's workers; each item with its result
        (or what its training raised), in the items' order, as results arrive.

        Evaluations reach ``evaluated`` as the workers compute them. One progress bar
        counts the iterations of all items; it starts again after each result, whose
        line (``Progress.end``) replaces it.
        """
        assert self.pool is not None, "train_on_workers needs a pool"
        if not items:
            return
        total = self.experiment.config.total
        starts = [item.point.start_iteration for item in items]
        reached = list(starts)
        bar: list[Tick] = []  # the current bar's tick, when one is shown
        label = f"level {items[0].level}: {len(items)} trainings on {self.pool.size} workers"

        def told(index: int, kind: str, value: Any) -> None:
            if kind == ROW:
                if self.evaluated is not None:
                    self.evaluated(items[index], value)
                return
            reached[index] = value
            done = sum(r - s for r, s in zip(reached, starts))
            if not bar:
                bar.append(self.progress.begin(label, done, sum(total - s for s in starts)))
            bar[0](done)

        # Closed however the caller stops: the trainings still running are stopped then.
        with closing(self.pool.train(self.experiment, items, told)) as outcomes:
            for index, outcome in outcomes:
                reached[index] = total
                bar.clear()
                if isinstance(outcome, PooledResult):
                    if outcome.mask is not None:  # dynamic sparse training moved it
                        items[index].mask = outcome.mask.to(self.experiment.device)
                    yield items[index], outcome.result
                else:
                    yield items[index], outcome

    def train_alone(self, item: Planned) -> TrainResult:
        """Train one network in the working model."""
        config, point = self.experiment.config, item.point
        self.model.load_state_dict(point.state)
        if self.ranks is not None:  # the other ranks train the same network beside this one
            send(TrainingJob(point.state, item.mask, item.data_seed, point.start_iteration,
                             point.constant_lr, _captures(item)))
        tick = self.progress.begin(item.name, point.start_iteration, config.total)
        updaters = self._updaters([item])
        with together():
            result = train(self.model, item.mask, self.experiment.data, config, data_seed=item.data_seed,
                           start_iteration=point.start_iteration, constant_lr=point.constant_lr,
                           capture_at=_captures(item), progress=tick,
                           callbacks=list(updaters.values()), evaluated=self._telling([item]))
        self._final_masks(updaters, [item])
        return result

    def train_as_population(self, items: list[Planned]) -> list[TrainResult]:
        """Train the items as populations, one per schedule position their starts share
        (a control may start elsewhere than the ticket); results in the items' order."""
        positions: dict[tuple[int, float | None], list[int]] = {}
        for index, item in enumerate(items):
            key = (item.point.start_iteration, item.point.constant_lr)
            positions.setdefault(key, []).append(index)
        results: list[TrainResult | None] = [None] * len(items)
        for indices in positions.values():
            trained = self._population([items[i] for i in indices])
            for index, result in zip(indices, trained, strict=True):
                results[index] = result
        return [result for result in results if result is not None]

    def _population(self, items: list[Planned]) -> list[TrainResult]:
        """Train items that start at one schedule position as one population."""
        point = items[0].point
        tick = self.progress.begin(f"level {items[0].level}: population of {len(items)}",
                                   point.start_iteration, self.experiment.config.total)
        members = [Member(i.point.state, i.mask, i.data_seed, _captures(i)) for i in items]
        updaters = self._updaters(items)
        results = train_population(self.model, members, self.experiment.data, self.experiment.config,
                                   start_iteration=point.start_iteration,
                                   constant_lr=point.constant_lr, progress=tick,
                                   callbacks=list(updaters.values()),
                                   evaluated=self._telling(items))
        self._final_masks(updaters, items)
        return results

    def _telling(self, items: list[Planned]) -> Evaluated | None:
        """What the loop calls with each evaluation's rows: one per item, in order."""
        evaluated = self.evaluated
        if evaluated is None:
            return None

        def tell(rows: list[dict[str, float]]) -> None:
            for item, row in zip(items, rows, strict=True):
                evaluated(item, row)

        return tell

    def _updaters(self, items: list[Planned]) -> dict[int, MaskUpdater]:
        """Per member (index in ``items``), the dynamic sparse training of a level-0 ticket."""
        if self.experiment.dynamic is None:
            return {}
        return {member: self.experiment.dynamic.updater(UpdaterContext(
                    item.mask, self.experiment.data, self.experiment.config, item.data_seed, member))
                for member, item in enumerate(items) if item.level == 0 and item.branch == TICKET}

    def _final_masks(self, updaters: dict[int, MaskUpdater], items: list[Planned]) -> None:
        """A dynamically trained ticket is the mask it ended with."""
        for member, updater in updaters.items():
            items[member].mask = updater.mask().to(self.experiment.device)


def _captures(item: Planned) -> frozenset[int]:
    rewind = frozenset() if item.capture is None else frozenset({item.capture})
    return rewind | frozenset(item.control_captures)
