"""``set`` and ``rigl``: drop-and-grow dynamic sparse training, and the built-in allocations.

Every ``every`` iterations until ``end`` of the training, each sparse layer drops the
``k = floor(f_t x kept)`` kept weights of smallest magnitude and grows ``k`` others: at
random (SET, Mocanu et al. 2018) or those of largest dense-gradient magnitude (RigL, Evci
et al. 2020). ``f_t`` is ``fraction``, cosine-decayed to 0 at ``end`` under ``decay:
cosine``. The candidates to grow are the weights not kept after the drop, so a layer keeps
exactly as many weights as before; a grown weight that was not kept starts at zero with
zeroed optimizer state. RigL's gradient is that of a fresh batch of the training split,
drawn by the updater's own seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ...api import (
    Allocation,
    LayerShape,
    Mask,
    MaskUpdater,
    NoParams,
    Step,
    UpdaterContext,
    derive_seed,
    erk_counts,
    top_positions,
    uniform_counts,
)
from . import DropGrowParams, ErkParams


def uniform_allocation(params: NoParams) -> Allocation:
    """Every layer at the overall density."""
    return uniform_counts


def erk_allocation(params: ErkParams) -> Allocation:
    """Erdős–Rényi-Kernel densities at the params' power."""

    def allocate(layers: Sequence[LayerShape], density: float) -> list[int]:
        return erk_counts(layers, density, params.power)

    return allocate


def moved_fraction(params: DropGrowParams, iteration: int, total: int) -> float:
    """The fraction of kept weights moved at ``iteration``; 0 from ``end`` on."""
    stop = params.end * total
    if iteration >= stop:
        return 0.0
    if params.decay == "constant":
        return params.fraction
    return params.fraction / 2 * (1 + math.cos(math.pi * iteration / stop))


def drop_and_grow(weight: torch.Tensor, keep: torch.Tensor, grow_scores: torch.Tensor,
                  fraction: float) -> torch.Tensor:
    """Move ``floor(fraction x kept)`` weights of one layer in place; the newly grown ones.

    Drops the smallest |w| among the kept (ties: the earlier position), grows the best
    ``grow_scores`` among the rest (the just dropped included), zeroes the dropped and
    the grown weights.
    """
    kept = keep.reshape(-1).bool().cpu()
    active = kept.nonzero().squeeze(1)
    count = math.floor(fraction * active.numel())
    if count == 0 or active.numel() == kept.numel():
        return torch.zeros_like(keep, dtype=torch.bool)
    magnitude = weight.detach().reshape(-1).abs().to("cpu", torch.float64)[active]
    dropped = active[top_positions(-magnitude, count)]
    after = kept.clone()
    after[dropped] = False
    candidates = (~after).nonzero().squeeze(1)
    scores = grow_scores.detach().reshape(-1).to("cpu", torch.float64)[candidates]
    grown = candidates[top_positions(torch.nan_to_num(scores, nan=-math.inf), count)]
    new_keep = after.clone()
    new_keep[grown] = True
    newly = torch.zeros_like(kept)
    newly[grown] = True
    survivors = after.reshape(keep.shape).to(keep.device)  # new_keep holds all of after
    with torch.no_grad():
        weight.mul_(survivors.to(weight.dtype))  # dropped -> 0, newly grown start at 0
        keep.copy_(new_keep.reshape(keep.shape))
    return newly.reshape(keep.shape).to(keep.device)


class DropGrow:
    """The step callback of one training under ``set`` or ``rigl``."""

    def __init__(self, params: DropGrowParams, context: UpdaterContext, by_gradient: bool):
        self.params, self.context, self.by_gradient = params, context, by_gradient
        self.stepper = None

    def __call__(self, step: Step) -> None:
        """Update the masks every ``every`` iterations, until ``end``."""
        self.stepper = step.stepper
        done = step.done
        if done % self.params.every or done >= step.total:
            return
        fraction = moved_fraction(self.params, done, step.total)
        if fraction > 0:
            self.update(done, fraction)

    def update(self, iteration: int, fraction: float) -> None:
        """Drop and grow in every sparse layer of the stepper's member."""
        member = self.context.member
        layers = self.stepper.sparse_layers(member)
        if self.by_gradient:
            scores = [g.abs() for g in self.stepper.dense_gradients(*self._batch(iteration),
                                                                    member=member)]
        else:
            generator = torch.Generator().manual_seed(
                derive_seed(self.context.data_seed, "grow", iteration))
            scores = [torch.rand(w.shape, generator=generator) for _, w, _ in layers]
        for (name, weight, keep), score in zip(layers, scores):
            newly = drop_and_grow(weight, keep, score, fraction)
            self.stepper.reset_state(name, newly, member)

    def _batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh training batch for RigL's gradients, drawn by the updater's own seed."""
        data = self.context.data
        device = data.x_train.device
        generator = torch.Generator(device=device).manual_seed(
            derive_seed(self.context.data_seed, "gradient", iteration))
        index = torch.randint(len(data.y_train), (self.context.config.batch_size,),
                              generator=generator, device=device)
        inputs = data.x_train.index_select(0, index)
        if data.augment is not None:
            inputs = data.augment(inputs, generator)
        return inputs, data.y_train.index_select(0, index)

    def mask(self) -> Mask:
        """The starting mask with every sparse layer's current keep tensor."""
        current = dict(self.context.mask.items())
        if self.stepper is not None:
            for name, _, keep in self.stepper.sparse_layers(self.context.member):
                current[name] = keep.bool()
        return Mask(current)


class Method:
    """A drop-and-grow method: its params and how it grows."""

    def __init__(self, params: DropGrowParams, by_gradient: bool):
        self.params, self.by_gradient = params, by_gradient

    def updater(self, context: UpdaterContext) -> MaskUpdater:
        """A fresh callback for one training."""
        return DropGrow(self.params, context, self.by_gradient)


def set_method(params: DropGrowParams) -> Method:
    """SET: drop the smallest magnitudes, regrow at random."""
    return Method(params, by_gradient=False)


def rigl_method(params: DropGrowParams) -> Method:
    """RigL: drop the smallest magnitudes, regrow the largest dense gradients."""
    return Method(params, by_gradient=True)
