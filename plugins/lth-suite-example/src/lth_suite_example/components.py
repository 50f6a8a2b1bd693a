"""The example's torch code, imported only when a spec uses ``tiny_mlp``, ``weight_norm``
or ``shuffled_weights``."""

from __future__ import annotations

import math
from statistics import mean

import torch
from torch import nn

from lth_suite.api import (
    ControlContext,
    ControlStart,
    DataInfo,
    ExperimentFinished,
    LevelFinished,
    RewindPoint,
)

from . import ShuffleParams, TinyMLPParams


class TinyMLP(nn.Sequential):
    """Flatten, one hidden layer with ReLU, the output layer: ``hidden``, ``out``."""

    def __init__(self, params: TinyMLPParams, info: DataInfo):
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.Linear(math.prod(info.input_shape), params.width)
        self.relu = nn.ReLU()
        self.out = nn.Linear(params.width, info.num_classes)  # the last Linear: the output layer


class WeightNorm:
    """The L2 norm of the trained ticket's kept weights, at every level."""

    def after_level(self, event: LevelFinished) -> dict[str, float]:
        """``total`` over all prunable tensors and one value per tensor; mean over replicates."""
        rows = []
        for ticket in event.of("ticket"):
            state = ticket.result.state
            if not state:  # weights not kept (e.g. read back without them on resume)
                continue
            norms = {name: float((state[name] * keep.to(state[name].device)).norm())
                     for name, keep in ticket.mask.items()}
            norms["total"] = math.sqrt(sum(v * v for v in norms.values()))
            rows.append(norms)
        return {key: mean(row[key] for row in rows) for key in rows[0]} if rows else {}

    def after_experiment(self, event: ExperimentFinished) -> dict[str, float]:
        """Nothing beyond the per-level values."""
        return {}


def weight_norm(params: object) -> WeightNorm:
    """A ``WeightNorm`` analyzer (it takes no params)."""
    return WeightNorm()


class ShuffledWeights:
    """A control: the ticket's mask, its starting weights permuted within each layer.

    Does the ticket need its weights where they are, or only their values per layer?
    """

    varies = "weights"  # reports put it beside the other controls that vary the weights

    def __init__(self, params: ShuffleParams):
        self.kept_only = params.kept_only

    def __call__(self, context: ControlContext) -> ControlStart:
        """The ticket's mask; each masked tensor's starting values shuffled."""
        state = dict(context.point.state)
        for name, keep in context.mask.items():
            weight = state[name].clone()
            where = (keep.to(weight.device) if self.kept_only
                     else torch.ones_like(weight, dtype=torch.bool))
            values = weight[where]
            order = torch.randperm(len(values), generator=context.generator).to(values.device)
            weight[where] = values[order]
            state[name] = weight
        return ControlStart(context.mask, RewindPoint(state, context.point.start_iteration,
                                                      context.point.constant_lr))
