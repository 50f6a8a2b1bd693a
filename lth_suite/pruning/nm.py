"""N:M structured sparsity: at most N kept weights in every group of M consecutive weights
along the input dimension (2:4 is what sparse tensor cores multiply).

A linear weight ``[out, in]`` is grouped along ``in``; a conv weight ``[out, in, kh, kw]``
along its input channels at each kernel position (channels last, as a sparse matrix product
sees a convolution). A layer whose input dimension M does not divide stays unstructured.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch

from .masks import Mask
from .targets import random_mask_like


def fits(shape: tuple[int, ...] | torch.Size, m: int) -> bool:
    """Whether a linear (2-d) or conv (4-d) weight of this shape splits into groups of M."""
    return len(shape) in (2, 4) and shape[1] % m == 0


def to_groups(tensor: torch.Tensor, m: int) -> torch.Tensor:
    """A ``[groups, M]`` view (a copy for convs) of a weight-shaped tensor."""
    if tensor.dim() == 4:
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.reshape(-1, m)


def from_groups(groups: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Inverse of ``to_groups``."""
    if len(shape) == 4:
        out, channels, kh, kw = shape
        return groups.reshape(out, kh, kw, channels).permute(0, 3, 1, 2).contiguous()
    return groups.reshape(shape)


def holds(keep: torch.Tensor, n: int, m: int) -> bool:
    """Whether a mask tensor keeps at most N of every M."""
    return bool((to_groups(keep, m).sum(dim=1) <= n).all())


def top_n(scores: torch.Tensor, allowed: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """A mask of ``allowed``'s shape keeping, per group of M, the N best-scoring allowed
    weights (fewer where fewer are allowed); ties go to the earlier position."""
    values = to_groups(scores.detach().to("cpu", torch.float64), m).clone()
    values = torch.where(torch.isnan(values), -torch.inf, values)
    allowed_groups = to_groups(allowed.cpu(), m)
    # A stable descending sort keeps the earlier of equal scores; unallowed sort last.
    rank_keys = torch.where(allowed_groups, values, torch.full_like(values, -torch.inf))
    order = torch.sort(rank_keys, dim=1, descending=True, stable=True).indices
    chosen = torch.zeros_like(allowed_groups)
    chosen.scatter_(1, order[:, :n], True)
    return from_groups(chosen & allowed_groups, allowed.shape).to(allowed.device)


def project(preferred: Mask, current: Mask, magnitudes: Mapping[str, torch.Tensor],
            n: int, m: int, names: Collection[str]) -> Mask:
    """The N:M mask inside ``current`` closest to a criterion's unstructured choice.

    In each group the criterion's kept weights come first, then the rest by magnitude:
    where it kept more than N, the largest of them stay; where fewer, the largest others
    fill up to N. For ``magnitude`` this is exactly N:M magnitude pruning. Tensors outside
    ``names`` keep the criterion's choice.
    """
    projected = {}
    for name, keep in preferred.items():
        if name not in names:
            projected[name] = keep
            continue
        magnitude = magnitudes[name].detach().abs().to("cpu", torch.float64)
        scores = 2.0 * keep.cpu().to(torch.float64) + magnitude / (1.0 + magnitude.max())
        projected[name] = top_n(scores, current[name], n, m)
    return Mask(projected)


def random_like(ticket: Mask, structured: set[str], n: int, m: int,
                generator: torch.Generator) -> Mask:
    """A random mask with the ticket's per-layer counts and, on its ``structured`` tensors,
    its N:M pattern: N random weights of every group of M."""
    unstructured = random_mask_like(ticket, generator)
    return Mask({name: top_n(torch.rand(keep.shape, generator=generator),
                             torch.ones_like(keep), n, m) if name in structured
                 else unstructured[name] for name, keep in ticket.items()})
