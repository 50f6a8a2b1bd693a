"""Built-in analyzers: their params models and the hook.

Each analyzer lives in its own module (they need torch), imported when a spec uses it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...api import NoParams, RegisterFn, hookimpl, lazy
from .. import moved

__getattr__ = moved(__name__, {
    "LayerDensity": "density", "InitStats": "init_stats",
    "Instability": "instability", "MaskSimilarity": "similarity",
    "Structure": "structure"})


class InstabilityParams(BaseModel):
    """Interpolation resolution and an optional cap on each training's length."""

    model_config = ConfigDict(extra="forbid")
    points: int = Field(default=11, ge=2, description="evaluations along the path, ends included")
    iterations: int | None = Field(default=None, ge=1, description="train each copy at most this "
                                   "many iterations from the rewind point (default: the "
                                   "spec's whole training)")


class InferenceParams(BaseModel):
    """What to measure: formats, batch sizes, device, threads, rounds."""

    model_config = ConfigDict(extra="forbid")
    formats: list[str] | None = Field(default=None, description="formats to measure beside "
                                      "dense (default: every registered format)",
                                      json_schema_extra={"component_kind": "format"})
    batches: list[int] = Field(default=[1, 64], min_length=1, description="batch sizes timed")
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="where the forwards run")
    threads: int = Field(default=1, ge=1, description="CPU threads while timing (fixed)")
    rounds: int = Field(default=7, ge=1, description="interleaved timing rounds (median)")
    warmup: int = Field(default=3, ge=0, description="untimed calls before timing")

    @field_validator("batches")
    @classmethod
    def _positive(cls, batches: list[int]) -> list[int]:
        if any(b < 1 for b in batches):
            raise ValueError("batch sizes must be at least 1")
        return sorted(set(batches))


@hookimpl
def lth_register_analyzers(register: RegisterFn) -> None:
    """Register ``layer_density``, ``mask_similarity``, ``structure``, ``init_stats``,
    ``instability`` and ``inference``."""
    register("layer_density", lazy("lth_suite.builtin.analyzers.density:layer_density"),
             NoParams, "per-layer density of the ticket at every level")
    register("mask_similarity", lazy("lth_suite.builtin.analyzers.similarity:mask_similarity"),
             NoParams, "IoU of ticket masks across levels, replicates and the random_prune "
             "control, beside chance")
    register("structure", lazy("lth_suite.builtin.analyzers.structure:structure"), NoParams,
             "removed units, filter/channel spread and input-to-output connectivity")
    register("init_stats", lazy("lth_suite.builtin.analyzers.init_stats:init_stats"), NoParams,
             "|w| and sign of kept vs pruned weights at init and at the rewind point")
    register("instability", lazy("lth_suite.builtin.analyzers.instability:Instability"),
             InstabilityParams, "linear mode connectivity: error barrier between two data "
             "orders (opt-in, two extra trainings per replicate and level)")
    register("inference", lazy("lth_suite.builtin.analyzers.inference:Inference"),
             InferenceParams, "measured latency, memory and size of each level's ticket in "
             "every runnable format (opt-in: it times forwards)")
