"""Built-in controls: the hypothesis's own (reinit, random_prune) and the sanity checks
of the literature that followed it.

Each is a sibling branch of the ticket at every pruned level; its registered name is its
branch's name and its description the branch's legend. The controls themselves (torch)
live in ``starts.py``, imported when a spec uses one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...api import Duration, NoParams, RegisterFn, hookimpl, lazy

STARTS = "lth_suite.builtin.controls.starts"

# name -> (factory, description): the description is the legend of the branch.
CONTROLS = {
    "reinit": ("reinit", "same mask, fresh random init (Frankle & Carbin 2019)"),
    "random_prune": ("random_prune", "random mask, same per-layer density (Frankle & Carbin 2019)"),
    "signed_reinit": ("signed_reinit",
                      "same mask, fresh magnitudes with the init's signs (Zhou et al. 2019)"),
    "signed_constant": ("signed_constant",
                        "same mask, each weight +-std of its layer's init by the init's sign "
                        "(Zhou et al. 2019)"),
    "inverted": ("inverted", "the criterion's lowest scores on the trained dense network, "
                 "ticket's per-layer counts (Frankle et al. 2021)"),
    "oneshot": ("oneshot", "the trained dense network pruned once to the ticket's per-layer "
                "counts (Frankle & Carbin 2019)"),
    "random_labels": ("random_labels", "the criterion applied to data with shuffled labels "
                      "(Su et al. 2020)"),
}


class RewindStepParams(BaseModel):
    """``rewind_step``: the iteration of the dense training its weights come from."""

    model_config = ConfigDict(extra="forbid")
    at: Duration = Field(description="the rewind point k, e.g. '500it' or '1ep'")


@hookimpl
def lth_register_controls(register: RegisterFn) -> None:
    """Register ``reinit``, ``random_prune``, ``signed_reinit``, ``signed_constant``,
    ``inverted``, ``oneshot``, ``random_labels`` and ``rewind_step``."""
    for name, (factory, description) in CONTROLS.items():
        register(name, lazy(f"{STARTS}:{factory}"), NoParams, description)
    register("rewind_step", lazy(f"{STARTS}:rewind_step"), RewindStepParams,
             "same mask, the dense training's weights at iteration k (Frankle et al. 2020)")
