"""Built-in pruning criteria: magnitude, random and channel_refill."""

from __future__ import annotations

import torch

from ..hookspecs import hookimpl
from ..masks import Mask, keep_top
from ..pruning import PruneRequest
from ..registry import NoParams, RegisterFn
from .channel_refill import channel_refill


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


@hookimpl
def lth_register_criteria(register: RegisterFn) -> None:
    """Register ``magnitude``, ``random`` and ``channel_refill``."""
    register("magnitude", magnitude, NoParams, "smallest |weight| pruned first")
    register("random", random, NoParams, "uniformly random weights pruned")
    register("channel_refill", channel_refill, NoParams,
             "magnitude, then whole conv filters refilled: structured tickets (Chen et al. 2022)")
