"""Built-in rewind strategies: init, step (late rewinding), auto (late rewinding to the
earliest point found stable to SGD noise), lr, finetune.

The strategies live in ``strategies.py`` (they need torch), imported when a spec
uses one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...api import Duration, NoParams, RegisterFn, hookimpl, lazy
from .. import moved

STRATEGIES = "lth_suite.builtin.rewinds.strategies"
__getattr__ = moved(__name__, dict.fromkeys(["RewindToInit", "RewindToStep", "KeepWeights"],
                                            "strategies"))


class StepParams(BaseModel):
    """Late rewinding (Frankle et al. 2020): back to the weights at iteration k."""

    model_config = ConfigDict(extra="forbid")
    iteration: Duration = Field(description="rewind point, e.g. '500it' or '1ep'")


class AutoParams(BaseModel):
    """Instability-guided late rewinding (Frankle et al., ICML 2020): the earliest
    candidate from which two copies of the dense network, trained with different data
    orders, end in one linearly connected basin."""

    model_config = ConfigDict(extra="forbid")
    candidates: list[Duration] = Field(
        min_length=1, description="rewind points measured in this order, earliest first "
        "(e.g. [0, 100, 250, 500] or ['0ep', '1ep'])")
    threshold: float = Field(default=0.02, gt=0, lt=1, description="a candidate is stable when "
                             "its error barrier is under this (0.02: two points of test error)")
    points: int = Field(default=5, ge=2, description="evaluations along the linear path, "
                        "ends included")
    iterations: Duration | None = Field(
        default=None, description="budget: train each copy this long past its candidate "
        "instead of to the end of the training (cheaper, less faithful)")

    @field_validator("candidates")
    @classmethod
    def _increasing(cls, candidates: list[Duration]) -> list[Duration]:
        units = {c.unit for c in candidates}
        amounts = [c.amount for c in candidates]
        if len(units) == 1 and any(b <= a for a, b in zip(amounts, amounts[1:])):
            raise ValueError("candidates must be in increasing order, without repeats")
        return candidates


@hookimpl
def lth_register_rewinds(register: RegisterFn) -> None:
    """Register ``init``, ``step``, ``auto``, ``lr`` and ``finetune``; each description is the
    ticket's legend in reports, ``{iteration}`` filled from the spec."""
    register("init", lazy(f"{STRATEGIES}:rewind_to_init"), NoParams,
             "weights rewound to their initialisation")
    register("step", lazy(f"{STRATEGIES}:rewind_to_step"), StepParams,
             "weights rewound to iteration {iteration}")
    register("auto", lazy(f"{STRATEGIES}:rewind_auto"), AutoParams,
             "weights rewound to the earliest point stable to SGD noise")
    register("lr", lazy(f"{STRATEGIES}:rewind_lr"), NoParams,
             "trained weights, learning-rate schedule replayed")
    register("finetune", lazy(f"{STRATEGIES}:finetune"), NoParams,
             "trained weights, fine-tuned at the final learning rate")
