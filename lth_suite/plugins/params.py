"""Params models shared by plugins, importable without torch (``lth-suite validate`` needs
only these)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass(frozen=True)
class ModelDataConfig:
    """The input a model expects, as its library states it (timm's data config).

    The ``lth_model_data_config`` hook returns one; each field a dataset's params model
    also has, and that a spec left unset (None), takes the value here.
    """

    image_size: int | None = None  # side of the square input
    mean: tuple[float, ...] | None = None  # per channel
    std: tuple[float, ...] | None = None
    interpolation: str | None = None  # "bilinear", "bicubic", "nearest"
    crop_fraction: float | None = None  # the share of the resized side an evaluation crop keeps

    def fields(self) -> dict[str, Any]:
        """The values it states, by field name."""
        return {k: v for k, v in asdict(self).items() if v is not None}
