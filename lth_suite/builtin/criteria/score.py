"""The ``magnitude``, ``random`` and ``lamp`` criteria, registered by the package's hook: both rank the
kept weights by a score and keep the top of each group."""

from __future__ import annotations

import torch

from ...api import Mask, NoParams, PruneRequest, keep_top


def magnitude(params: NoParams) -> object:
    """Keep the largest |w| of each group (one group per layer, or per kind if global)."""

    def criterion(request: PruneRequest) -> Mask:
        weights = dict(request.model.named_parameters())
        scores = {name: weights[name].detach().abs() for name in request.mask}
        return keep_top(scores, request.mask, request.groups)

    return criterion


def random(params: NoParams) -> object:
    """Keep uniformly random weights, as many as magnitude would."""

    def criterion(request: PruneRequest) -> Mask:
        scores = {name: torch.rand(keep.shape, generator=request.generator)
                  for name, keep in request.mask.items()}
        return keep_top(scores, request.mask, request.groups)

    return criterion


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


def lamp(params: NoParams) -> object:
    """Keep the highest LAMP scores of each group: under ``global`` scope the layer-wise
    densities follow from the scores (Lee et al. 2021); layerwise it ranks as magnitude."""

    def criterion(request: PruneRequest) -> Mask:
        weights = dict(request.model.named_parameters())
        scores = {name: lamp_scores(weights[name] * request.mask[name]) for name in request.mask}
        return keep_top(scores, request.mask, request.groups)

    return criterion
