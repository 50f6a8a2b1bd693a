"""Built-in layer-wise allocations (uniform, erk) and dynamic sparse training (set, rigl).

The allocations live in ``lth_suite.pruning.allocation`` and the training methods in
``dynamic.py`` (torch), imported when a spec uses one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...api import NoParams, RegisterFn, hookimpl, lazy

DYNAMIC = "lth_suite.builtin.sparsity.dynamic"


class ErkParams(BaseModel):
    """Params of ``erk``."""

    model_config = ConfigDict(extra="forbid")
    power: float = Field(default=1.0, gt=0, description="densities proportional to the ERK "
                         "scale to this power (RigL's erk_power_scale; 0 < power)")


class DropGrowParams(BaseModel):
    """Params shared by the drop-and-grow methods."""

    model_config = ConfigDict(extra="forbid")
    fraction: float = Field(default=0.3, gt=0, lt=1,
                            description="fraction of each layer's kept weights moved per update")
    every: int = Field(default=100, ge=1, description="iterations between mask updates (ΔT)")
    end: float = Field(default=0.75, gt=0, le=1, description="fraction of the training after "
                       "which the mask stops changing")
    decay: Literal["cosine", "constant"] = Field(
        default="cosine", description="the moved fraction decays to 0 at `end` (cosine) or stays")


class SetParams(DropGrowParams):
    """Params of ``set``: a constant fraction until the end, as Mocanu et al. train."""

    end: float = Field(default=1.0, gt=0, le=1, description="fraction of the training after "
                       "which the mask stops changing")
    decay: Literal["cosine", "constant"] = Field(default="constant", description="the moved "
                                                 "fraction decays to 0 at `end` (cosine) or stays")


@hookimpl
def lth_register_allocations(register: RegisterFn) -> None:
    """Register ``uniform`` and ``erk``."""
    register("uniform", lazy(f"{DYNAMIC}:uniform_allocation"), NoParams,
             "every layer at the same density")
    register("erk", lazy(f"{DYNAMIC}:erk_allocation"), ErkParams,
             "Erdős–Rényi-Kernel: density ~ sum of dims / product of dims (Evci et al. 2020)")


@hookimpl
def lth_register_dynamic_sparsity(register: RegisterFn) -> None:
    """Register ``set`` and ``rigl``."""
    register("set", lazy(f"{DYNAMIC}:set_method"), SetParams,
             "drop the smallest |w|, regrow at random (Mocanu et al. 2018)")
    register("rigl", lazy(f"{DYNAMIC}:rigl_method"), DropGrowParams,
             "drop the smallest |w|, regrow the largest |gradient| (Evci et al. 2020)")
