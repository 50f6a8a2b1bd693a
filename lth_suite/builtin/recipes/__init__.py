"""Built-in training recipes: the optimizers ``sgd``, ``adam``, ``adamw`` and the
learning-rate decays ``cosine`` and ``linear``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...api import RegisterFn, hookimpl, lazy


class DecayParams(BaseModel):
    """Where a decay ends, as a fraction of ``training.lr``."""

    model_config = ConfigDict(extra="forbid")
    final: float = Field(default=0.0, ge=0, le=1, description="the factor of lr at the end of the training")


@hookimpl
def lth_register_optimizers(register: RegisterFn) -> None:
    """Register ``sgd``, ``adam`` and ``adamw`` (fused kernels, training's lr and decay)."""
    register("sgd", lazy("lth_suite.builtin.recipes.builders:sgd"),
             description="SGD with training.momentum, nesterov and weight_decay")
    register("adam", lazy("lth_suite.builtin.recipes.builders:adam"),
             description="Adam; weight_decay is added to the gradient (L2)")
    register("adamw", lazy("lth_suite.builtin.recipes.builders:adamw"),
             description="AdamW: weight_decay decoupled from the gradient (Loshchilov & Hutter)")


@hookimpl
def lth_register_schedules(register: RegisterFn) -> None:
    """Register the ``cosine`` and ``linear`` decays."""
    register("cosine", lazy("lth_suite.builtin.recipes.builders:CosineDecay"), DecayParams,
             "half a cosine from lr down to final x lr")
    register("linear", lazy("lth_suite.builtin.recipes.builders:LinearDecay"), DecayParams,
             "a straight line from lr down to final x lr")
