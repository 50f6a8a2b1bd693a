"""Layer-wise density allocation: how many weights each layer keeps at an overall density.

An allocation maps the prunable layers' shapes and one overall density to a count of kept
weights per layer that totals the density exactly (rounded once, overall). ``uniform``
gives every layer the same density; ``erk`` (Evci et al. 2020, "Rigging the Lottery")
gives each layer a density proportional to the sum of its dimensions over their product,
clipping the layers that would exceed density 1 to dense and sharing the rest again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .masks import Mask


@dataclass(frozen=True)
class LayerShape:
    """A prunable weight tensor an allocation shares the kept weights among."""

    name: str
    shape: tuple[int, ...]  # (out, in) of a linear layer, (out, in, kh, kw) of a conv

    @property
    def numel(self) -> int:
        """Number of weights."""
        return math.prod(self.shape)


Allocation = Callable[[Sequence[LayerShape], float], list[int]]
"""``(layers, density) -> kept weights per layer``, totalling ``density`` of all weights."""


def shapes_of(mask: Mask, names: Sequence[str] | None = None) -> list[LayerShape]:
    """The shapes of a mask's tensors (of ``names``, in that order, when given)."""
    return [LayerShape(name, tuple(mask[name].shape)) for name in (names or list(mask))]


def apportion(densities: Sequence[float], layers: Sequence[LayerShape], density: float,
              ) -> list[int]:
    """Per-layer counts near ``density_l * numel_l`` that total ``round(density * all)``.

    Largest remainders: every layer gets the floor of its share, then the layers with the
    largest fractional parts (earlier first on ties) one more each, never beyond dense.
    """
    total = round(density * sum(layer.numel for layer in layers))
    shares = [min(d, 1.0) * layer.numel for d, layer in zip(densities, layers)]
    counts = [min(layer.numel, math.floor(s)) for s, layer in zip(shares, layers)]
    order = sorted(range(len(layers)), key=lambda i: (-(shares[i] - counts[i]), i))
    missing = total - sum(counts)
    while missing > 0:
        room = [i for i in order if counts[i] < layers[i].numel]
        if not room:
            break
        for i in room[:missing]:
            counts[i] += 1
        missing = total - sum(counts)
    return counts


def uniform_densities(layers: Sequence[LayerShape], density: float) -> list[float]:
    """Every layer at the overall density."""
    return [density] * len(layers)


def erk_scale(shape: Sequence[int]) -> float:
    """ERK's unnormalised density of a layer: (sum of its dimensions) / (their product).

    (fan_in + fan_out) / (fan_in x fan_out) for a linear layer; a conv layer's kernel
    dimensions enter both sums and products (the "Kernel" of Erdős–Rényi-Kernel).
    """
    return sum(shape) / math.prod(shape)


def erk_densities(layers: Sequence[LayerShape], density: float, power: float = 1.0,
                  ) -> list[float]:
    """Per-layer densities ``eps * erk_scale ** power`` at overall ``density``.

    A layer whose density would exceed 1 is dense; eps is solved again over the others
    until none does (RigL's dense-layer clipping).
    """
    dense: set[int] = set()
    # In logarithms, relative to the largest scale still shared: a large power would
    # otherwise overflow, or underflow every scale to 0 and keep every layer dense.
    logs = [math.log(erk_scale(layer.shape)) for layer in layers]
    total = density * sum(layer.numel for layer in layers)
    while True:
        budget = total - sum(layers[i].numel for i in dense)
        rest = [i for i in range(len(layers)) if i not in dense]
        if not rest:
            return [1.0] * len(layers)
        top = max(logs[i] for i in rest)
        scales = [math.exp(power * (log - top)) if log < top else 1.0 for log in logs]
        spread = sum(scales[i] * layers[i].numel for i in rest)
        eps = budget / spread
        over = {i for i in range(len(layers)) if i not in dense and eps * scales[i] > 1}
        if not over:
            return [1.0 if i in dense else eps * scales[i] for i in range(len(layers))]
        dense |= over


def uniform_counts(layers: Sequence[LayerShape], density: float) -> list[int]:
    """Kept weights per layer: every layer at the overall density."""
    return apportion(uniform_densities(layers, density), layers, density)


def erk_counts(layers: Sequence[LayerShape], density: float, power: float = 1.0) -> list[int]:
    """Kept weights per layer under Erdős–Rényi-Kernel at the overall density."""
    return apportion(erk_densities(layers, density, power), layers, density)
