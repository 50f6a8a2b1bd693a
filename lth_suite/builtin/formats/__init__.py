"""Built-in inference formats: ``dense``, ``csr``, ``bsr``, ``shrunk`` and ``2:4``.

Their code (``lth_suite.analysis.formats``) needs torch and loads when a ticket is
measured or exported; this module only registers them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...api import NoParams, RegisterFn, hookimpl, lazy

FORMATS = "lth_suite.analysis.formats"


class BlockParams(BaseModel):
    """The block size of ``bsr``."""

    model_config = ConfigDict(extra="forbid")
    blocksize: int = Field(default=4, ge=1, description="square blocks of this side; weights "
                           "whose matrix does not divide into them stay dense")


@hookimpl
def lth_register_formats(register: RegisterFn) -> None:
    """Register ``dense``, ``csr``, ``bsr``, ``shrunk`` and ``2:4``."""
    register("dense", lazy(f"{FORMATS}:dense_format"), NoParams,
             "the masked dense network: the baseline")
    register("csr", lazy(f"{FORMATS}:csr_format"), NoParams,
             "linear and conv weights as torch.sparse CSR tensors (CPU, CUDA)")
    register("bsr", lazy(f"{FORMATS}:bsr_format"), BlockParams,
             "linear and conv weights as torch.sparse BSR tensors, where blocks divide them")
    register("shrunk", lazy(f"{FORMATS}:shrunk_format"), NoParams,
             "the structured export: a smaller dense network without dead units")
    register("2:4", lazy(f"{FORMATS}:two_four_format"), NoParams,
             "2:4 linear weights as semi-structured sparse float16 tensors (CUDA)")
