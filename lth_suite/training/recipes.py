"""What the optimizer and schedule plugins build: the protocols the training loop calls.

An optimizer plugin's factory returns an ``OptimizerBuilder``; the loop calls it with the
tensors to train and the resolved ``TrainConfig`` at every training (so a rewind always
starts from fresh optimizer state) and drives the ``Optimizer`` it returns. A schedule
plugin's factory returns a ``Decay``: the learning rate's factor over the training after
its warmup. Both must pickle (local workers receive them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from .config import TrainConfig


@runtime_checkable
class Optimizer(Protocol):
    """The optimizer interface the loop drives (``FusedOptimizer`` implements it)."""

    params: list[torch.Tensor]  # the tensors it updates, in the order it was given them
    lr: float  # the loop sets it before every step

    @property
    def has_state(self) -> bool:
        """Whether any parameter has optimizer state yet (a fresh optimizer has none)."""
        ...

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none=True``)."""
        ...

    def step(self) -> None:
        """One update of the parameters that have a gradient, in place, under no_grad."""
        ...

    def reset_(self, param: torch.Tensor, positions: torch.Tensor) -> None:
        """Zero the state of ``param`` at boolean ``positions`` (dynamic sparse training
        regrows weights there)."""
        ...


@runtime_checkable
class OptimizerBuilder(Protocol):
    """Builds a fresh ``Optimizer`` over some tensors for one training.

    A builder whose optimizers update every element on its own (no per-tensor norms) may
    set ``elementwise = True``: a population of networks then trains with one optimizer
    over their stacked tensors; without it, networks train one at a time.
    """

    def __call__(self, params: list[torch.Tensor], config: TrainConfig, /) -> Optimizer:
        """A new optimizer over ``params`` at ``config.lr`` (state created lazily)."""
        ...


@runtime_checkable
class Decay(Protocol):
    """The learning rate's factor after the warmup: 1 at the start, usually less later."""

    def __call__(self, step: int, steps: int, /) -> float:
        """The factor at ``step`` of the ``steps`` that follow the warmup (0 <= step < steps)."""
        ...
