"""lth-suite-timm: the ``timm`` architecture, any model of ``timm.create_model``.

This module holds the hook and the params model; the torch code is in ``models.py``,
registered with ``lazy`` so that having the plugin installed imports neither torch nor
timm until a spec builds a timm model.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lth_suite.api import ModelDataConfig, RegisterFn, hookimpl, lazy

__version__ = "0.1.0"

# Set by the core from the dataset: a spec giving them would contradict its data.
FROM_DATA = ("num_classes", "in_chans")
CLOSE_MATCHES = 5


class TimmParams(BaseModel):
    """``model: {name: timm, arch: vit_tiny_patch16_224, kwargs: {img_size: 28}}``."""

    model_config = ConfigDict(extra="forbid")
    arch: str = Field(min_length=1, description="a timm model name (timm.list_models())")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of timm.create_model (img_size, "
        "patch_size, drop_rate, ...); num_classes and in_chans come from the dataset")

    @field_validator("arch")
    @classmethod
    def _known_to_timm(cls, arch: str) -> str:
        import timm  # only when a spec names a timm model

        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=CLOSE_MATCHES,
                                              cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise ValueError(f"unknown timm model '{arch}'{hint}")
        return arch

    @field_validator("kwargs")
    @classmethod
    def _not_what_the_data_decides(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in FROM_DATA if k in kwargs]
        if given:
            raise ValueError(f"{', '.join(given)} come(s) from the dataset; remove from kwargs")
        if "pretrained" in kwargs:
            raise ValueError("pretrained: use model.pretrained (a file or hub id) instead")
        return kwargs


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``timm``."""
    register("timm", lazy("lth_suite_timm.models:build"), TimmParams,
             "any timm.create_model name, with its keyword arguments, random initialisation")


@hookimpl
def lth_model_data_config(params: BaseModel) -> ModelDataConfig | None:
    """A timm model's data config (input size, mean, std, interpolation, crop fraction)."""
    if not isinstance(params, TimmParams):
        return None
    from .models import data_config

    return data_config(params)
