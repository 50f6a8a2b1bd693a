"""Built-in rewind strategies: init, step (late rewinding), lr, finetune.

The strategies live in ``strategies.py`` (they need torch), imported when a spec
uses one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...api import Duration, NoParams, RegisterFn, hookimpl, lazy
from .. import moved

STRATEGIES = "lth_suite.builtin.rewinds.strategies"
__getattr__ = moved(__name__, dict.fromkeys(["RewindToInit", "RewindToStep", "KeepWeights"],
                                            "strategies"))


class StepParams(BaseModel):
    """Late rewinding (Frankle et al. 2020): back to the weights at iteration k."""

    model_config = ConfigDict(extra="forbid")
    iteration: Duration = Field(description="rewind point, e.g. '500it' or '1ep'")


@hookimpl
def lth_register_rewinds(register: RegisterFn) -> None:
    """Register ``init``, ``step``, ``lr`` and ``finetune``."""
    register("init", lazy(f"{STRATEGIES}:rewind_to_init"), NoParams,
             "weights at iteration 0 (LTH)")
    register("step", lazy(f"{STRATEGIES}:rewind_to_step"), StepParams,
             "late rewinding to iteration k")
    register("lr", lazy(f"{STRATEGIES}:rewind_lr"), NoParams,
             "learning-rate rewinding: keep weights, replay the schedule")
    register("finetune", lazy(f"{STRATEGIES}:finetune"), NoParams,
             "keep weights, train at the final learning rate")
