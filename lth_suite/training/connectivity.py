"""Linear mode connectivity (Frankle et al., ICML 2020): two copies of a network train
from one point with different data orders; the test error along the straight line
between the two trained networks says whether they ended in one basin.

The error barrier (the paper's instability) is the highest error on the path minus the
mean of the endpoints' errors. The ``instability`` analyzer measures it at each level's
rewind point; a searched rewind (``auto``) measures it at candidate points of the dense
training and rewinds to the earliest stable one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from ..pruning.masks import Mask
from .config import TrainConfig
from .population import Member, train_population
from .result import snapshot
from .single import evaluate, train
from .streaming import AnySplits

State = dict[str, torch.Tensor]


def interpolate(a: State, b: State, alpha: float) -> State:
    """(1 - alpha) a + alpha b for every float tensor, batch-norm statistics included;
    integer buffers (batch counters) come from ``a``, as they cannot be mixed."""
    return {k: torch.lerp(v, b[k], alpha) if v.is_floating_point() else v.clone()
            for k, v in a.items()}


def barriers(errors: list[float], alphas: list[float]) -> dict[str, float]:
    """``barrier``: max error minus the mean of the endpoints' errors (the paper's
    instability); ``barrier_linear``: the largest excess over the straight line between
    the endpoints' errors (the convention of later work, e.g. Entezari et al. 2022)."""
    first, last = errors[0], errors[-1]
    return {"barrier": max(errors) - (first + last) / 2,
            "barrier_linear": max(e - ((1 - a) * first + a * last) for e, a in zip(errors, alphas))}


def linear_path(model: nn.Module, a: State, b: State, points: int, data: AnySplits,
                config: TrainConfig) -> list[dict[str, float]]:
    """Test error and loss at ``points`` evenly spaced networks from ``a`` to ``b`` (ends
    included), evaluated in ``model`` (its weights are overwritten): one row per point,
    ``alpha``, ``error`` and ``loss``."""
    rows = []
    for i in range(points):
        alpha = i / (points - 1)
        model.load_state_dict(interpolate(a, b, alpha))
        loss, accuracy = evaluate(model, data.x_test, data.y_test, config.acceleration)
        rows.append({"alpha": alpha, "error": 1.0 - accuracy, "loss": loss})
    return rows


def copy_config(config: TrainConfig, start: int, iterations: int | None) -> TrainConfig:
    """The schedule a copy trains on: to the end of the training, or ``iterations`` past
    ``start`` when a budget caps it; one evaluation at each end (the path is evaluated
    apart)."""
    total = config.total if iterations is None else min(config.total, start + iterations)
    return dataclasses.replace(config, total=total, eval_every=max(1, total))


def train_copies(model: nn.Module, starts: Sequence[State], masks: Sequence[Mask],
                 seeds: Sequence[int], data: AnySplits, config: TrainConfig, *,
                 start_iteration: int = 0, constant_lr: float | None = None,
                 population: bool = False) -> list[State]:
    """Train one network per (start, mask, data seed) from ``start_iteration`` to
    ``config.total``; their final weights, in order. ``population`` trains them all at
    once (one vmapped pass), else one after the other in ``model``."""
    start_iteration = min(start_iteration, config.total)
    if population and len(starts) > 1:
        members = [Member(state, mask.to(data.device), seed)
                   for state, mask, seed in zip(starts, masks, seeds, strict=True)]
        results = train_population(model, members, data, config, start_iteration=start_iteration,
                                   constant_lr=constant_lr)
        return [result.state for result in results]
    ends = []
    for state, mask, seed in zip(starts, masks, seeds, strict=True):
        model.load_state_dict(state)
        train(model, mask.to(data.device), data, config, data_seed=seed,
              start_iteration=start_iteration, constant_lr=constant_lr)
        ends.append(snapshot(model))
    return ends
