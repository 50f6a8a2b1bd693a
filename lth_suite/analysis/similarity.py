"""Mask overlap: Jaccard index (IoU) and its value for random masks of equal density."""

from __future__ import annotations

from ..pruning.masks import Mask


def iou_counts(a: Mask, b: Mask, names: list[str] | None = None) -> tuple[int, int]:
    """(|a & b|, |a | b|) over the given tensors (all shared tensors by default)."""
    names = names if names is not None else [n for n in a if n in b]
    inter = sum(int((a[n] & b[n].to(a[n].device)).sum()) for n in names)
    union = sum(int((a[n] | b[n].to(a[n].device)).sum()) for n in names)
    return inter, union


def iou(a: Mask, b: Mask, names: list[str] | None = None) -> float:
    """Jaccard index of the kept weights; 1.0 when both keep nothing."""
    inter, union = iou_counts(a, b, names)
    return inter / union if union else 1.0


def chance_iou(p: float, q: float) -> float:
    """Expected IoU of two independent uniformly random masks of densities p and q."""
    union = p + q - p * q
    return p * q / union if union else 1.0


def chance_iou_pooled(tensors: list[tuple[int, float, float]]) -> float:
    """Chance IoU of random masks pooled over tensors, given (numel, p, q) per tensor.

    Each tensor has its own densities (the output layer is pruned at its own rate),
    so the pooled value is expected intersection over expected union rather than
    ``chance_iou`` of the overall densities.
    """
    inter = sum(n * p * q for n, p, q in tensors)
    union = sum(n * (p + q - p * q) for n, p, q in tensors)
    return inter / union if union else 1.0
