"""The ``magnitude``, ``random`` and ``lamp`` criteria, registered by the package's hook: both rank the
kept weights by a score and keep the top of each group."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...api import Mask, NoParams, PruneRequest, keep_top

Scores = Callable[[PruneRequest], dict[str, torch.Tensor]]


class ByScores:
    """A criterion that keeps the top of each group by ``scores``; controls that invert a
    criterion (``inverted``) read the scores through its ``scores`` method."""

    def __init__(self, scores: Scores):
        self.scores = scores

    def __call__(self, request: PruneRequest) -> Mask:
        """The kept weights with the highest scores, ``keep`` per group."""
        return keep_top(self.scores(request), request.mask, request.groups)


def _magnitudes(request: PruneRequest) -> dict[str, torch.Tensor]:
    weights = dict(request.model.named_parameters())
    return {name: weights[name].detach().abs() for name in request.mask}


def _random_scores(request: PruneRequest) -> dict[str, torch.Tensor]:
    return {name: torch.rand(keep.shape, generator=request.generator)
            for name, keep in request.mask.items()}


def magnitude(params: NoParams) -> ByScores:
    """Keep the largest |w| of each group (one group per layer, or per kind if global)."""
    return ByScores(_magnitudes)


def random(params: NoParams) -> ByScores:
    """Keep uniformly random weights, as many as magnitude would."""
    return ByScores(_random_scores)


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP scores (Lee et al. 2021): w_u^2 over the sum of w_v^2 of every v at least as
    large as u in the same layer (u itself included, equal ones in stable order).

    Pruned weights are zero, so they add nothing to the sums of the kept ones.
    """
    squared = weight.detach().to("cpu", torch.float64).reshape(-1) ** 2
    order = torch.sort(squared, stable=True).indices  # ascending
    ascending = squared[order]
    # suffix sums: for the i-th smallest, the sum of it and everything after it
    suffix = torch.flip(torch.cumsum(torch.flip(ascending, [0]), 0), [0])
    scores = torch.zeros_like(squared)
    scores[order] = torch.where(suffix > 0, ascending / suffix, torch.zeros_like(ascending))
    return scores.reshape(weight.shape)


def _lamp_scores(request: PruneRequest) -> dict[str, torch.Tensor]:
    weights = dict(request.model.named_parameters())
    return {name: lamp_scores(weights[name] * request.mask[name]) for name in request.mask}


def lamp(params: NoParams) -> ByScores:
    """Keep the highest LAMP scores of each group: under ``global`` scope the layer-wise
    densities follow from the scores (Lee et al. 2021); layerwise it ranks as magnitude."""
    return ByScores(_lamp_scores)
