"""Speed settings of a training: CPU threads, numeric precision, memory format, compilation.

Each one is a ``training`` field of the spec (``threads``, ``precision``,
``channels_last``, ``compile``) and part of the spec hash, because each can change the
last bits of the results. The process-wide switches (thread count, TF32) are set for
the duration of one training and restored after it, so a training leaves no trace on
the next one or on the caller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SpecError


@dataclass(frozen=True)
class Acceleration:
    """How the steps of a training run on the hardware; the defaults are plain eager fp32."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None

    @contextlib.contextmanager
    def session(self, device: torch.device) -> Iterator[None]:
        """Thread count, and on CUDA the float32 matmul/convolution precision, for one training.

        ``fp32`` asks CUDA for IEEE float32 (torch's own default lets cuDNN convolutions
        use TF32); ``tf32`` lets both matrix products and convolutions use TF32 tensor
        cores. The CPU has no TF32: there ``tf32`` computes in float32, and the CUDA
        switches are left alone.
        """
        threads = torch.get_num_threads()
        matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
        saved = (matmul.fp32_precision, conv.fp32_precision) if device.type == "cuda" else None
        try:
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            if saved is not None:
                matmul.fp32_precision = conv.fp32_precision = (
                    "tf32" if self.precision == "tf32" else "ieee")
            yield
        finally:
            if saved is not None:
                matmul.fp32_precision, conv.fp32_precision = saved
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast around a forward pass (and its loss) when ``precision`` is bf16."""
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def memory_format(self, model: nn.Module) -> torch.memory_format | None:
        """channels-last for a network with 4-d (convolution) weights, when asked for."""
        if self.channels_last and any(p.dim() == 4 for p in model.parameters()):
            return torch.channels_last
        return None

    def prepare(self, model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                 Callable[[torch.Tensor], torch.Tensor]]:
        """The training forward pass and the input conversion for ``model``.

        The model is converted to channels-last in place (its parameters stay the same
        tensors' storage for the optimizer); ``torch.compile`` wraps only the training
        forward pass, and evaluation stays eager so inference mode causes no recompile.
        """
        memory_format = self.memory_format(model)
        if memory_format is not None:
            model.to(memory_format=memory_format)

            def convert(x: torch.Tensor) -> torch.Tensor:
                return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x
        else:
            def convert(x: torch.Tensor) -> torch.Tensor:
                return x
        forward: Callable[[torch.Tensor], torch.Tensor] = (
            CompiledForward(model) if self.compile else model)
        return forward, convert


class CompiledForward:
    """``torch.compile(model)``; a failure of the compiler itself becomes a spec error.

    Compilation happens at the first call. When that call fails but the eager model runs
    on the same batch, the compiler is to blame (no C++ compiler, an unsupported
    operation): the error names ``training.compile`` instead of ending in a traceback.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.compiled = torch.compile(model)
        self.checked = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled forward pass (the first call names a compiler failure)."""
        if self.checked:
            return self.compiled(x)
        try:
            out = self.compiled(x)
        except Exception as exc:  # noqa: BLE001 - sorted out below
            if not _runs_eagerly(self.model, x):
                raise  # the model itself fails: its own error, unchanged
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise SpecError([("training.compile", f"torch.compile failed ({type(exc).__name__}"
                              f"{': ' + reason if reason else ''}); set training.compile: "
                              "false to train without it")]) from None
        self.checked = True
        return out


def _runs_eagerly(model: nn.Module, x: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - only whether it runs matters
        return False
    return True
