"""The base of every spec section, and the plugin component a section names."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class Strict(BaseModel):
    """Base of every spec section: unknown fields are errors."""

    # inf/nan pass ``gt``/``lt`` bounds only partly (lr=.inf would), so refuse them outright.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ComponentSpec(Strict):
    """A plugin component: its registered name and its params.

    Written flat in YAML (``{name: mlp, hidden: [300, 100]}``) or as a bare name.
    """

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data, "params": {}}
        if isinstance(data, dict) and "params" not in data:
            flat = {"params": {k: v for k, v in data.items() if k != "name"}}
            if "name" in data:  # a missing name must read "Field required", not "not a string"
                flat["name"] = data["name"]
            return flat
        return data

    @model_serializer(mode="plain")
    def _to_flat(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


class ModelSpec(ComponentSpec):
    """The architecture component, and where its starting weights come from.

    ``pretrained`` (a safetensors file, a torch state dict, a hub id, or what the
    architecture reads itself, such as a Hugging Face folder for ``hf``) replaces the
    architecture's initialisation as the level-0 starting point; ``null``: none.
    """

    pretrained: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "params" not in data and "pretrained" in data:
            data = dict(data)
            pretrained = data.pop("pretrained")
            return {**ComponentSpec._from_flat(data), "pretrained": pretrained}
        return ComponentSpec._from_flat(data)

    @model_serializer(mode="plain")
    def _to_flat(self) -> dict[str, Any]:
        # Written only when set, so the hash of every spec without it stays.
        start = {"pretrained": self.pretrained} if self.pretrained is not None else {}
        return {"name": self.name, **self.params, **start}
