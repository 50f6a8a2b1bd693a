"""Built-in pruning criteria: magnitude, random and channel_refill.

The criteria themselves (torch) live in ``score_criteria.py`` and ``channel_refill.py``,
imported when a spec uses one.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import NoParams, RegisterFn, lazy
from . import moved

__getattr__ = moved(__name__, {"magnitude": "score_criteria", "random": "score_criteria"})


@hookimpl
def lth_register_criteria(register: RegisterFn) -> None:
    """Register ``magnitude``, ``random`` and ``channel_refill``."""
    register("magnitude", lazy("lth_suite.builtin.score_criteria:magnitude"), NoParams,
             "smallest |weight| pruned first")
    register("random", lazy("lth_suite.builtin.score_criteria:random"), NoParams,
             "uniformly random weights pruned")
    register("channel_refill", lazy("lth_suite.builtin.channel_refill:channel_refill"), NoParams,
             "magnitude, then whole conv filters refilled: structured tickets (Chen et al. 2022)")
