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
