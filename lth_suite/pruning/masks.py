"""Masks over the prunable weights of a model: plain boolean tensors, True = kept.

No ``torch.nn.utils.prune``: it doubles the state dict and lets ``weight_orig`` drift.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .prunable import LAYER_KINDS, Layer, prunable_layers

__all__ = ["LAYER_KINDS", "Layer", "Mask", "keep_top", "prunable_layers", "top_positions"]


class Mask(Mapping[str, torch.Tensor]):
    """Per prunable tensor, a boolean tensor of its shape; True = weight kept."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self._tensors = {k: v.to(torch.bool) for k, v in tensors.items()}

    @classmethod
    def dense(cls, model: nn.Module, layers: list[Layer] | None = None) -> Mask:
        """A mask that keeps every prunable weight of the model."""
        params = dict(model.named_parameters())
        layers = layers if layers is not None else prunable_layers(model)
        return cls({layer.name: torch.ones_like(params[layer.name], dtype=torch.bool)
                    for layer in layers})

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def kept(self) -> dict[str, int]:
        """Number of kept weights per tensor."""
        return {k: int(v.sum()) for k, v in self._tensors.items()}

    def density(self) -> float:
        """Fraction of all masked weights that are kept."""
        total = sum(v.numel() for v in self._tensors.values())
        return sum(self.kept().values()) / total if total else 1.0

    def layer_density(self) -> dict[str, float]:
        """Fraction kept, per tensor."""
        return {k: int(v.sum()) / v.numel() for k, v in self._tensors.items()}

    def is_subset_of(self, other: Mask) -> bool:
        """True when every weight kept here is also kept in ``other``."""
        return all(not bool((v & ~other[k]).any()) for k, v in self._tensors.items())

    def to(self, device: torch.device | str) -> Mask:
        """The same mask on another device."""
        return Mask({k: v.to(device) for k, v in self._tensors.items()})

    def apply_(self, model: nn.Module) -> None:
        """Zero the pruned weights of ``model`` in place."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in self._tensors.items():
                params[name].mul_(keep.to(params[name].device))

    def equals(self, other: Mask) -> bool:
        """Same tensors, same values."""
        return set(self) == set(other) and all(torch.equal(v, other[k].to(v.device))
                                               for k, v in self._tensors.items())

    def pack(self) -> bytes:
        """Compact storage: one bit per weight, as an ``.npz`` payload."""
        arrays = {}
        for name, keep in self._tensors.items():
            flat = keep.detach().cpu().numpy().reshape(-1)
            arrays[f"{name}|bits"] = np.packbits(flat)
            arrays[f"{name}|shape"] = np.asarray(keep.shape, dtype=np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def unpack(cls, payload: bytes) -> Mask:
        """Inverse of ``pack``."""
        tensors = {}
        with np.load(io.BytesIO(payload)) as arrays:
            names = [k[: -len("|bits")] for k in arrays.files if k.endswith("|bits")]
            for name in names:
                shape = tuple(int(s) for s in arrays[f"{name}|shape"])
                count = int(np.prod(shape)) if shape else 1
                bits = np.unpackbits(arrays[f"{name}|bits"])[:count].astype(bool)
                tensors[name] = torch.from_numpy(bits.reshape(shape))
        return cls(tensors)


def top_positions(values: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` largest of 1-d ``values`` (no NaN), ties to the earlier one.

    Exactly what a stable descending sort keeps, found in linear time: a selection of
    the threshold (``kthvalue``), everything above it, then the first positions equal
    to it. A full sort of a VGG-19's 20M scores takes seconds; this, a tenth of that.
    """
    if count <= 0:
        return torch.zeros(0, dtype=torch.long)
    if count >= values.numel():
        return torch.arange(values.numel())
    threshold = torch.kthvalue(values, values.numel() - count + 1).values
    above = (values > threshold).nonzero().squeeze(1)
    tied = (values == threshold).nonzero().squeeze(1)[: count - above.numel()]
    return torch.cat([above, tied])


def keep_top(scores: Mapping[str, torch.Tensor], mask: Mask,
             groups: list[tuple[list[str], int]]) -> Mask:
    """Keep, in each group of tensors, the ``keep`` highest-scoring currently kept weights.

    Only currently kept weights are candidates, so pruned weights never come back
    whatever their score (even when kept weights score -inf or NaN; NaN ranks
    lowest). Ties are broken by position, so the result is deterministic.
    """
    new = {name: keep.clone() for name, keep in mask.items()}
    for names, keep in groups:
        for n in names:
            if scores[n].numel() != mask[n].numel():
                raise ValueError(f"scores of {n} have shape {tuple(scores[n].shape)}, "
                                 f"its mask {tuple(mask[n].shape)}")
        kept = torch.cat([mask[n].detach().reshape(-1).cpu() for n in names])
        flat = torch.cat([scores[n].detach().to("cpu", torch.float64).reshape(-1)
                          for n in names])
        candidates = kept.nonzero().squeeze(1)
        values = flat[candidates]
        values = torch.where(torch.isnan(values), -torch.inf, values)
        count = max(0, min(int(keep), candidates.numel()))
        chosen = torch.zeros(flat.numel(), dtype=torch.bool)
        chosen[candidates[top_positions(values, count)]] = True
        offset = 0
        for n in names:
            size = mask[n].numel()
            new[n] = chosen[offset: offset + size].reshape(mask[n].shape).to(mask[n].device)
            offset += size
    return Mask(new)
