"""What a rewind strategy receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..training.config import TrainConfig

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RewindContext:
    """The weights a rewind may return to, and the training it precedes."""

    init_state: State  # the dense network at iteration 0
    captured_state: State | None  # the dense network at the rewind's capture iteration
    trained_state: State  # the weights the new mask was computed from
    config: TrainConfig
    # the iteration of ``captured_state`` when the lottery chose it (a searched rewind)
    captured_iteration: int | None = None


@dataclass(frozen=True)
class RewindPoint:
    """Weights and schedule position a pruned level trains from."""

    state: State
    start_iteration: int = 0  # train from here to the end of the schedule
    constant_lr: float | None = None  # replaces the schedule when set


class Rewind(Protocol):
    """A rewind strategy, as built by a registered factory."""

    def capture_iteration(self, config: TrainConfig) -> int | None:
        """The iteration of the dense training whose weights ``__call__`` needs, if any."""
        ...

    def __call__(self, context: RewindContext) -> RewindPoint:
        """The starting point of every pruned level's training."""
        ...


class SearchedRewind(Protocol):
    """A rewind whose point the lottery chooses per replicate after the dense training
    (``auto``): for each candidate in order, two copies of the dense network train from
    it with different data orders, and the earliest candidate whose error barrier is
    under ``threshold`` is chosen (the last one when none is). Its weights reach the
    rewind as ``RewindContext.captured_state``, its iteration as ``captured_iteration``."""

    threshold: float
    points: int  # evaluations along the linear path, ends included

    def candidate_iterations(self, config: TrainConfig) -> list[int]:
        """The candidate points, in iterations, in the order they are measured."""
        ...

    def budget(self, config: TrainConfig) -> int | None:
        """Iterations each copy trains past its candidate; None for the whole training."""
        ...

    def __call__(self, context: RewindContext) -> RewindPoint:
        """The starting point of every pruned level's training."""
        ...


def searched(rewind: object) -> SearchedRewind | None:
    """The rewind as a searched one, when it is (it names candidate iterations)."""
    return rewind if callable(getattr(rewind, "candidate_iterations", None)) else None  # type: ignore[return-value]
