"""Formats: runnable representations of a ticket, built from its masked dense network.

A format turns the masked dense network (the baseline, ``dense``) into another network
that computes the same function: ``csr`` and ``bsr`` hold the pruned linear and conv
weights as ``torch.sparse`` tensors (a conv as a sparse matrix times its unfolded input),
``shrunk`` is the structured export with dead units removed (``analysis.shrink``) and
``2:4`` the semi-structured sparse linear weights of CUDA's sparse tensor cores. A
format that cannot represent a ticket (no 2:4 pattern, no CUDA, no chain to shrink)
says why instead of building anything; measuring is ``analysis.inference``'s job.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional

from ..pruning.masks import Mask
from .semistructured import two_four_linears
from .shrink import shrink

# Every CSR/BSR tensor torch creates warns that their support is "in beta"; the outputs are
# checked against the dense network before any use here, so the warning only adds noise.
warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta",
                        category=UserWarning)


@dataclass
class FormatRequest:
    """What a format builds from: the masked dense network (evaluation mode, pruned weights
    zero, on ``device``), its mask and the device to run on."""

    model: nn.Module
    mask: Mask
    device: torch.device


@dataclass
class Representation:
    """A runnable form of a ticket, or the reason there is none (``model`` is None)."""

    model: nn.Module | None
    reason: str = ""
    input_dtype: torch.dtype = torch.float32  # what the inputs are cast to before a forward
    converted: list[str] = field(default_factory=list)  # tensors held in the format
    # Compared with the dense output within ``tolerance`` of its largest magnitude: float32
    # formats sum in another order, float16 ones round every product.
    tolerance: float = 1e-4


class Format(Protocol):
    """A representation builder, as a registered factory returns it."""

    def __call__(self, request: FormatRequest) -> Representation:
        """The ticket in this format, or ``Representation(None, reason)``."""
        ...


def unavailable(reason: str) -> Representation:
    """A format that does not apply to this ticket (or machine), and why."""
    return Representation(None, reason)


# --------------------------------------------------------------------------------------
# Sparse layers
# --------------------------------------------------------------------------------------
class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` a sparse (CSR or BSR) matrix of shape (out, in)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The sparse product, for inputs of any leading shape."""
        flat = x.reshape(-1, x.shape[-1])
        # W @ x^T keeps the sparse operand first, the layout torch's kernels take.
        out = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


class SparseConv2d(nn.Module):
    """A convolution as a sparse (out, in*kh*kw) matrix times the unfolded input."""

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unfold, one sparse product for the whole batch, fold back to (N, C, H, W)."""
        n, _, h, w = x.shape
        cols = functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        positions = cols.shape[2]
        stacked = cols.transpose(0, 1).reshape(cols.shape[1], n * positions)
        out = torch.sparse.mm(self.weight, stacked)  # (out, N * positions)
        out = out.reshape(self.out_channels, n, positions).transpose(0, 1)
        if self.bias is not None:
            out = out + self.bias[:, None]
        sizes = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in zip(
            (h, w), self.padding, self.dilation, self.kernel_size, self.stride)]
        return out.reshape(n, self.out_channels, *sizes)


def _convertible(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1
            and module.padding_mode == "zeros" and not isinstance(module.padding, str))


def sparsify(model: nn.Module, mask: Mask, layout: torch.layout,
             blocksize: tuple[int, int] | None = None) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` whose masked linear and conv weights are sparse tensors of
    ``layout``; the weights converted. A weight whose matrix does not divide into
    ``blocksize`` blocks (BSR), or a grouped or non-zero-padded conv, stays dense."""
    sparse = copy.deepcopy(model)
    converted = []
    for name, module in list(sparse.named_modules()):
        weight_name = f"{name}.weight" if name else "weight"
        if weight_name not in mask or not _convertible(module):
            continue
        matrix = module.weight.detach().reshape(module.weight.shape[0], -1)
        if blocksize is not None and (matrix.shape[0] % blocksize[0]
                                      or matrix.shape[1] % blocksize[1]):
            continue
        weight = matrix.to_sparse_csr() if layout is torch.sparse_csr \
            else matrix.to_sparse_bsr(blocksize)
        weight = _int32_indices(weight)
        bias = None if module.bias is None else module.bias.detach().clone()
        replacement = (SparseLinear(weight, bias) if isinstance(module, nn.Linear)
                       else SparseConv2d(module, weight))
        _replace(sparse, name, replacement)
        converted.append(weight_name)
    return sparse, converted


def _int32_indices(weight: torch.Tensor) -> torch.Tensor:
    """The same sparse tensor with 32-bit indices (torch makes 64-bit ones): half the index
    bytes, as fast on the CPU; kept 64-bit where an index would not fit."""
    if weight.values().numel() >= 2**31 - 1 or max(weight.shape) >= 2**31 - 1:
        return weight
    return torch.sparse_compressed_tensor(
        weight.crow_indices().int(), weight.col_indices().int(), weight.values(),
        weight.shape, layout=weight.layout)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


# --------------------------------------------------------------------------------------
# The built-in formats
# --------------------------------------------------------------------------------------
def dense(request: FormatRequest) -> Representation:
    """The masked dense network itself: the baseline every format is compared with."""
    return Representation(request.model, converted=[])


def csr(request: FormatRequest) -> Representation:
    """Linear and conv weights as compressed sparse row tensors."""
    if request.device.type not in ("cpu", "cuda"):
        return unavailable(f"torch has no CSR kernels on {request.device.type}")
    model, converted = sparsify(request.model, request.mask, torch.sparse_csr)
    if not converted:
        return unavailable("no linear or conv weight to convert")
    return Representation(model, converted=converted)


def bsr(blocksize: int) -> Format:
    """Linear and conv weights as block sparse row tensors of square ``blocksize`` blocks."""
    def build(request: FormatRequest) -> Representation:
        model, converted = sparsify(request.model, request.mask, torch.sparse_bsr,
                                    (blocksize, blocksize))
        if not converted:
            return unavailable(f"no weight matrix divides into {blocksize}x{blocksize} blocks")
        return Representation(model, converted=converted)
    return build


def shrunk(request: FormatRequest) -> Representation:
    """The structured export: a smaller dense network without the dead units."""
    result = shrink(copy.deepcopy(request.model).cpu(), request.mask.to("cpu"))
    if result.model is None:
        return unavailable(result.reason)
    return Representation(result.model.to(request.device).eval(),
                          converted=[change.layer for change in result.layers])


def two_four(request: FormatRequest) -> Representation:
    """2:4 linear weights as semi-structured sparse float16 tensors (CUDA tensor cores)."""
    candidates = two_four_linears(request.model, request.mask)
    if not candidates:
        return unavailable("no linear weight of the ticket has the 2:4 pattern")
    if request.device.type != "cuda":
        return unavailable("semi-structured sparse kernels run on CUDA only")
    from torch.sparse import to_sparse_semi_structured

    model = copy.deepcopy(request.model).to(torch.float16)
    converted, refused = [], []
    for name in candidates:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        try:
            module.weight = nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                         requires_grad=False)
            converted.append(name)
        except (RuntimeError, ValueError) as exc:  # shapes or GPUs its kernels refuse
            refused.append(f"{name}: {str(exc).splitlines()[0]}")
    if not converted:
        return unavailable("; ".join(refused))
    return Representation(model, reason="; ".join(refused), input_dtype=torch.float16,
                          converted=converted, tolerance=1e-2)


# The factories the built-in plugin registers: ``factory(params) -> Format``.
def dense_format(params: Any) -> Format:
    """The factory of ``dense``."""
    return dense


def csr_format(params: Any) -> Format:
    """The factory of ``csr``."""
    return csr


def bsr_format(params: Any) -> Format:
    """The factory of ``bsr`` (``params.blocksize``)."""
    return bsr(params.blocksize)


def shrunk_format(params: Any) -> Format:
    """The factory of ``shrunk``."""
    return shrunk


def two_four_format(params: Any) -> Format:
    """The factory of ``2:4``."""
    return two_four
