"""Params models shared by plugins, importable without torch (``lth-suite validate`` needs
only these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatasetParams(BaseModel):
    """Params every dataset accepts; plugin params models subclass this."""

    # .inf or .nan would pass ``gt=0`` and fail only when the data is split.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    validation: float = Field(
        default=0.1, gt=0,
        description="held out of the training data for early stopping: a fraction (<1) "
        "or a number of examples",
    )
    subset: int | None = Field(default=None, ge=1, description="train on this many examples")
    split_seed: int = Field(default=0, ge=0, description="seed of the validation split")
