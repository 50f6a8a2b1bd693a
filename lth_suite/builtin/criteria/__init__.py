"""Built-in pruning criteria: magnitude, random, lamp, channel_refill and wanda.

The criteria themselves (torch) live in ``score.py`` and ``channel_refill.py``,
imported when a spec uses one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...api import NoParams, RegisterFn, hookimpl, lazy
from .. import moved

__getattr__ = moved(__name__, {"magnitude": "score", "random": "score", "lamp": "score"})


class WandaParams(BaseModel):
    """Calibration of ``wanda``: the first training examples, in batches."""

    model_config = ConfigDict(extra="forbid")
    batches: int = Field(default=8, ge=1, le=10000, description="calibration batches")
    batch_size: int = Field(default=16, ge=1, description="examples per calibration batch")


@hookimpl
def lth_register_criteria(register: RegisterFn) -> None:
    """Register ``magnitude``, ``random``, ``lamp``, ``channel_refill`` and ``wanda``."""
    register("magnitude", lazy("lth_suite.builtin.criteria.score:magnitude"), NoParams,
             "smallest |weight| pruned first")
    register("random", lazy("lth_suite.builtin.criteria.score:random"), NoParams,
             "uniformly random weights pruned")
    register("lamp", lazy("lth_suite.builtin.criteria.score:lamp"), NoParams,
             "layer-adaptive magnitude scores: global scope sets the layer densities "
             "(Lee et al. 2021)")
    register("channel_refill", lazy("lth_suite.builtin.criteria.channel_refill:channel_refill"), NoParams,
             "magnitude, then whole conv filters refilled: structured tickets (Chen et al. 2022)")
    register("wanda", lazy("lth_suite.builtin.criteria.wanda:wanda"), WandaParams,
             "|weight| x input activation norm, per output row (Sun et al. 2023)")
