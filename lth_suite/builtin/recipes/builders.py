"""The built-in optimizers and decays, imported when a spec uses one."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...api import FusedOptimizer, NoParams, TrainConfig
from . import DecayParams


@dataclass(frozen=True)
class Fused:
    """Builds a ``FusedOptimizer`` of one kind from the training's lr and settings."""

    kind: str
    elementwise = True  # Adam, AdamW and SGD update every weight on its own

    def __call__(self, params: list[torch.Tensor], config: TrainConfig, /) -> FusedOptimizer:
        """A fresh optimizer over ``params``."""
        return FusedOptimizer(params, self.kind, config.lr, momentum=config.momentum,
                              nesterov=config.nesterov, weight_decay=config.weight_decay)


def sgd(params: NoParams) -> Fused:
    """The ``sgd`` builder."""
    return Fused("sgd")


def adam(params: NoParams) -> Fused:
    """The ``adam`` builder."""
    return Fused("adam")


def adamw(params: NoParams) -> Fused:
    """The ``adamw`` builder."""
    return Fused("adamw")


@dataclass(frozen=True)
class CosineDecay:
    """Half a cosine from 1 down to ``final`` over the steps after the warmup."""

    params: DecayParams

    def __call__(self, step: int, steps: int, /) -> float:
        """The factor at ``step`` of ``steps``."""
        final = self.params.final
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


@dataclass(frozen=True)
class LinearDecay:
    """A straight line from 1 down to ``final`` over the steps after the warmup."""

    params: DecayParams

    def __call__(self, step: int, steps: int, /) -> float:
        """The factor at ``step`` of ``steps``."""
        final = self.params.final
        return 1 - (1 - final) * min(step, steps) / steps
