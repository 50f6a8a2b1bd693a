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
    """Register ``init``, ``step``, ``lr`` and ``finetune``; each description is the
    ticket's legend in reports, ``{iteration}`` filled from the spec."""
    register("init", lazy(f"{STRATEGIES}:rewind_to_init"), NoParams,
             "weights rewound to their initialisation")
    register("step", lazy(f"{STRATEGIES}:rewind_to_step"), StepParams,
             "weights rewound to iteration {iteration}")
    register("lr", lazy(f"{STRATEGIES}:rewind_lr"), NoParams,
             "trained weights, learning-rate schedule replayed")
    register("finetune", lazy(f"{STRATEGIES}:finetune"), NoParams,
             "trained weights, fine-tuned at the final learning rate")
