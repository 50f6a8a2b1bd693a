"""The ``magnitude`` and ``random`` criteria, registered by the package's hook: both rank the
kept weights by a score and keep the top of each group."""

from __future__ import annotations

import torch

from ...plugins.registry import NoParams
from ...pruning.masks import Mask, keep_top
from ...pruning.targets import PruneRequest


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
