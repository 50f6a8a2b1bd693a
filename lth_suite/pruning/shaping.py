"""A level's targets reshaped by the spec's ``sparsity`` section: a layer-wise allocation
of the level's kept weights, or the N:M pattern of the level."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import LthError
from ..spec.sections import Pruning
from .allocation import Allocation, shapes_of
from .masks import Layer, Mask
from .nm import fits
from .targets import Group, layer_fraction


def allocated_groups(groups: Sequence[Group], mask: Mask, allocate: Allocation) -> list[Group]:
    """One group per layer, sharing the groups' total kept weights as ``allocate`` says.

    Masks only shrink: a layer never keeps more than it does now.
    """
    names = [name for group_names, _ in groups for name in group_names]
    if not names:
        return []
    shapes = shapes_of(mask, names)
    total = sum(keep for _, keep in groups)
    density = total / sum(shape.numel for shape in shapes)
    kept = mask.kept()
    counts = allocate(shapes, density)
    if len(counts) != len(shapes) or sum(counts) != total:
        raise LthError(f"the layer-wise allocation cannot reach the level's target: it keeps "
                       f"{sum(counts)} of {sum(s.numel for s in shapes)} weights where the "
                       f"level keeps {total}")
    return [([name], min(count, kept[name])) for name, count in zip(names, counts)]


def nm_groups(layers: Sequence[Layer], mask: Mask, rules: Pruning, n: int, m: int,
              ) -> list[Group]:
    """One group per prunable layer that splits into groups of M, keeping N of every M.

    Layers that do not split (or that the rules never prune) keep their weights, and so do
    those whose inputs run along another axis than 1 (transposed convolutions, weights
    stored as (in, out)): grouping them along axis 1 would group outputs, not inputs.
    """
    return [([layer.name], layer.numel * n // m) for layer in layers
            if layer_fraction(layer, rules) is not None and layer.in_axis == 1
            and fits(tuple(mask[layer.name].shape), m)]
