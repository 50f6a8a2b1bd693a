"""A 2:4 ticket as torch's semi-structured sparse tensors, for sparse tensor cores.

``torch.sparse.to_sparse_semi_structured`` stores a float16 weight that keeps 2 of every 4
consecutive input weights in half the space and multiplies it on the sparse tensor cores
of CUDA GPUs (compute capability 8.0 and later). Elsewhere, or for weights its kernels
refuse (shape, dtype), the masked dense network is the export and the summary says why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..pruning import nm
from ..pruning.masks import Mask

SEMI_STRUCTURED_MODEL = "semi_structured_model.pt"


@dataclass
class SemiStructured:
    """Which linear weights have the 2:4 pattern, which were converted, and why not."""

    candidates: list[str]  # linear weights keeping exactly 2 of every 4 inputs
    converted: list[str] = field(default_factory=list)
    file: Path | None = None  # the network with the converted weights, when written
    reason: str = ""  # why some or all weights stay dense


def two_four_linears(model: nn.Module, mask: Mask) -> list[str]:
    """The masked ``nn.Linear`` weights that keep exactly 2 of every 4 consecutive inputs."""
    linears = {f"{name}.weight" for name, module in model.named_modules()
               if isinstance(module, nn.Linear)}
    return [name for name, keep in mask.items() if name in linears and nm.fits(keep.shape, 4)
            and nm.holds(keep, 2, 4) and int(keep.sum()) * 2 == keep.numel()]


def export_semi_structured(model: nn.Module, mask: Mask, folder: Path) -> SemiStructured:
    """Write the network with its 2:4 linear weights as semi-structured sparse float16
    tensors on CUDA; where that cannot be done, write nothing and say why."""
    result = SemiStructured(two_four_linears(model, mask))
    if not result.candidates:
        result.reason = "no linear weight of the ticket has the 2:4 pattern"
        return result
    if not torch.cuda.is_available():
        result.reason = ("torch.sparse.to_sparse_semi_structured needs a CUDA device and "
                         "there is none here")
        return result
    from torch.sparse import to_sparse_semi_structured

    sparse = copy.deepcopy(model).to("cuda", torch.float16).eval()
    refused = []
    for name in result.candidates:
        module = sparse.get_submodule(name.rsplit(".", 1)[0])
        try:
            module.weight = nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                         requires_grad=False)
            result.converted.append(name)
        except (RuntimeError, ValueError) as exc:  # shapes or GPUs its kernels refuse
            refused.append(f"{name}: {str(exc).splitlines()[0]}")
    result.reason = "; ".join(refused)
    if result.converted:
        result.file = folder / SEMI_STRUCTURED_MODEL
        torch.save(sparse, result.file)
    return result
