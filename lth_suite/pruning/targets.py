"""What a level prunes: targets per layer or group, and the request a criterion gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..spec.sections import Pruning
from .masks import Layer, Mask, keep_top

Group = tuple[list[str], int]  # tensor names pooled under one threshold, weights to keep


@dataclass
class PruneRequest:
    """Everything a criterion may look at; criteria must not modify any of it."""

    model: nn.Module  # carries the weights to score (trained weights of the source level)
    mask: Mask  # the current mask; the new one must be a subset of it
    layers: list[Layer]
    groups: list[Group]  # keep exactly this many weights in each group
    level: int  # the level the new mask is for
    generator: torch.Generator  # seeded per (replicate, level): use it for any randomness
    init_state: dict[str, torch.Tensor] = field(default_factory=dict)  # weights at step 0
    data: Any = None  # lth_suite.training.data.Splits, for data-driven criteria


@runtime_checkable
class Criterion(Protocol):
    """A pruning criterion, as built by a registered factory: a request in, the next mask out."""

    def __call__(self, request: PruneRequest, /) -> Mask:  # any parameter name will do
        """A subset of ``request.mask`` keeping exactly ``keep`` weights in each group."""
        ...


def matches(layer_name: str, pattern: str) -> bool:
    """Whether a glob pattern names a parameter or the module that holds it."""
    module = layer_name.rsplit(".", 1)[0]
    return fnmatchcase(layer_name, pattern) or fnmatchcase(module, pattern)


def layer_fraction(layer: Layer, rules: Pruning) -> float | None:
    """The layer's per-level pruning fraction, or None when it is never pruned.

    ``exclude`` comes first, then the first pattern of ``fraction`` that names the layer
    or its kind, then the fraction of its kind.
    """
    if any(matches(layer.name, pattern) for pattern in rules.exclude):
        return None
    for pattern, fraction in rules.fraction.patterns.items():
        if pattern == layer.kind or matches(layer.name, pattern):
            return fraction
    return rules.fraction.for_kind(layer.kind)


def target_groups(layers: list[Layer], mask: Mask, rules: Pruning, level: int) -> list[Group]:
    """The groups a level prunes and how many weights each keeps.

    Iterative: each level keeps (1 - fraction) of what the previous level kept.
    Oneshot: the mask starts dense and keeps (1 - fraction) ** level of each tensor.
    Layerwise scope makes one group per tensor; global pools the tensors of a kind
    (and of a fraction, where patterns give a kind's tensors several).
    """
    kept = mask.kept()
    by_key: dict[str, tuple[list[str], int, float]] = {}
    for layer in layers:
        fraction = layer_fraction(layer, rules)
        if fraction is None:
            continue
        # Global scope pools a kind's tensors that share a fraction under one threshold.
        key = f"{layer.kind}@{fraction}" if rules.scope == "global" else layer.name
        names, base, _ = by_key.get(key, ([], 0, fraction))
        base += layer.numel if rules.strategy == "oneshot" else kept[layer.name]
        by_key[key] = (names + [layer.name], base, fraction)
    power = level if rules.strategy == "oneshot" else 1
    return [(names, int(round(base * (1 - fraction) ** power)))
            for names, base, fraction in by_key.values()]


def random_mask_like(ticket: Mask, generator: torch.Generator) -> Mask:
    """A random mask with the ticket's number of kept weights in every tensor."""
    dense = Mask({k: torch.ones_like(v) for k, v in ticket.items()})
    scores = {k: torch.rand(v.shape, generator=generator).to(v.device) for k, v in ticket.items()}
    groups = [([name], count) for name, count in ticket.kept().items()]
    return keep_top(scores, dense, groups)
