"""The footprint of a format: bytes of values and of sparse indices, size on disk, and
the peak memory of one forward: CUDA's allocator statistics on a GPU; on a Linux CPU,
where torch keeps no allocator statistics, the growth of the process's peak resident
memory (page-granular)."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import re
from collections.abc import Callable
from pathlib import Path

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


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")
RESET_PEAK_RSS = "5"  # clear_refs: reset the peak resident set size (Linux 4.0 and later)


def peak_forward_bytes(forward: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory one forward allocates beyond what was allocated before it: CUDA's
    allocator statistics, or on a Linux CPU the growth of peak resident memory; None
    where neither can be read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _peak_resident_growth(forward) if device.type == "cpu" else None


def _resident(field: str) -> int:
    """A size of this process's ``/proc/self/status`` (VmRSS, VmHWM), in bytes."""
    found = re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    if found is None:
        raise OSError(f"no {field} in {STATUS}")
    return int(found.group(1)) * 1024


def _peak_resident_growth(forward: Callable[[], object]) -> int | None:
    """How far one forward raises the process's resident memory above where it started.

    Torch keeps no statistics of its CPU allocator and its profiler pairs no allocation
    with its free, so the kernel's count is read instead: freed heap pages are first given
    back (``malloc_trim``) so that the forward's allocations must fault in fresh pages, the
    peak is reset, and the forward runs. Page-granular (a forward smaller than a page may
    read 0), and process-wide: the measuring thread must be the only one allocating.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
        before = _resident("VmRSS")
        forward()
        return max(0, _resident("VmHWM") - before)
    except (OSError, AttributeError):  # not Linux, or /proc not writable here
        return None
