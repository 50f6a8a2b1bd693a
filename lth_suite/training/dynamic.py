"""What a dynamic sparse training method is to the loop: a step callback that moves the
kept weights of one training, built from an ``UpdaterContext``.

Both steppers (``SingleNetwork``, ``Population``) expose, per member, the masked weights
(``sparse_layers``), a reset of the optimizer state of chosen weights (``reset_state``)
and the dense gradients on a batch (``dense_gradients``); a method changes the weights
and their keep tensors in place, between two steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..pruning.masks import Mask
from .config import TrainConfig
from .data import Splits
from .loop import Step


@dataclass
class UpdaterContext:
    """Everything a method needs to build the updater of one training."""

    mask: Mask  # the mask the training starts from
    data: Splits  # e.g. batches for RigL's dense gradients
    config: TrainConfig
    data_seed: int  # seeds the method's randomness, per iteration
    member: int = 0  # which of the stepper's networks (a population trains several)


@runtime_checkable
class MaskUpdater(Protocol):
    """A step callback that moves kept weights; the mask it ends with is ``mask()``."""

    def __call__(self, step: Step, /) -> None:
        """Maybe update the stepper's masks after this step (exact per-layer counts)."""
        ...

    def mask(self) -> Mask:
        """The mask as it is now (after training: the mask the network ended with)."""
        ...


@runtime_checkable
class DynamicSparsity(Protocol):
    """A dynamic sparse training method, as built by a registered factory."""

    def updater(self, context: UpdaterContext, /) -> MaskUpdater:
        """A fresh updater for one training."""
        ...
