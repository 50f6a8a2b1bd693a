"""The smallest complete lth-suite plugin: one architecture, one analyzer and one control.

Copy this package to start your own: rename it, keep the hooks you need. This module
holds only the hooks and the params models; the torch code is in ``components.py`` and
registered with ``lazy``, so merely having the plugin installed never imports torch
(``lth-suite validate`` and ``lth-suite plugins`` stay fast).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lth_suite.api import NoParams, RegisterFn, hookimpl, lazy

__version__ = "0.1.0"


class TinyMLPParams(BaseModel):
    """The spec's ``model: {name: tiny_mlp, width: ...}`` is validated against this."""

    model_config = ConfigDict(extra="forbid")  # a typo in a param is a spec error
    width: int = Field(default=64, ge=1, description="units of the hidden layer")


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``tiny_mlp``."""
    register("tiny_mlp", lazy("lth_suite_example.components:TinyMLP"), TinyMLPParams,
             "one hidden layer of `width` units")


@hookimpl
def lth_register_analyzers(register: RegisterFn) -> None:
    """Register ``weight_norm``."""
    register("weight_norm", lazy("lth_suite_example.components:weight_norm"), NoParams,
             "L2 norm of the trained ticket's kept weights per level")



class ShuffleParams(BaseModel):
    """The spec's ``controls: {shuffled_weights: {kept_only: ...}}`` is validated against this."""

    model_config = ConfigDict(extra="forbid")
    kept_only: bool = Field(default=True, description="shuffle only among the kept weights")


@hookimpl
def lth_register_controls(register: RegisterFn) -> None:
    """Register ``shuffled_weights``."""
    register("shuffled_weights", lazy("lth_suite_example.components:ShuffledWeights"),
             ShuffleParams, "same mask, starting weights shuffled within each layer")
