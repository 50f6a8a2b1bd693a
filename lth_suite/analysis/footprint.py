"""The footprint of a format: bytes of values and of sparse indices, size on disk, and
the peak memory of one forward where torch measures it (CUDA's allocator statistics;
torch keeps none for its CPU allocator)."""

from __future__ import annotations

import io
from collections.abc import Callable

import torch
from torch import nn


def tensor_bytes(tensor: torch.Tensor) -> tuple[int, int]:
    """(value bytes, index bytes) of a dense, CSR, BSR or semi-structured tensor."""
    if tensor.layout in (torch.sparse_csr, torch.sparse_bsr):
        values = tensor.values()
        indices = (tensor.crow_indices(), tensor.col_indices())
        return (values.numel() * values.element_size(),
                sum(i.numel() * i.element_size() for i in indices))
    packed = getattr(tensor, "packed", None)
    if packed is not None:  # torch's semi-structured sparse tensor: values and metadata
        meta = getattr(tensor, "meta", None)
        return (packed.numel() * packed.element_size(),
                0 if meta is None else meta.numel() * meta.element_size())
    return tensor.numel() * tensor.element_size(), 0


def model_bytes(model: nn.Module) -> tuple[int, int]:
    """(value bytes, index bytes) of every parameter and buffer, shared ones once."""
    seen: set[int] = set()
    values = indices = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        v, i = tensor_bytes(tensor.data if isinstance(tensor, nn.Parameter) else tensor)
        values, indices = values + v, indices + i
    return values, indices


def disk_bytes(model: nn.Module) -> int | None:
    """Bytes of the model's state dict saved with ``torch.save``; None if it cannot be."""
    buffer = io.BytesIO()
    try:
        torch.save(model.state_dict(), buffer)
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    return buffer.getbuffer().nbytes


def peak_forward_bytes(forward: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory one forward allocates beyond what was allocated before it (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    # Torch keeps no statistics of its CPU allocator (and its profiler's memory events
    # pair no allocation with its free on this torch): no CPU figure rather than a guess.
    return None
