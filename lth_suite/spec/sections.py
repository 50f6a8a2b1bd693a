"""The experiment spec: one pydantic model per section, strict everywhere.

Plugin sections (model, dataset, criterion, rewind, analyzers, launcher) are written flat in
YAML, ``{name: magnitude, some_param: 1}``; their params are validated against the
plugin's own params model when the spec is resolved (see ``spec.loading``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from .base import ComponentSpec, Strict
from .controls import Controls
from .report import Report
from .sparsity import Sparsity

# Names become run names and folder names: bounded well below the 255 bytes a file name may have.
NAME_MAX = 200


class Duration:
    """A training length in iterations (``"50000it"``) or epochs (``"40ep"``).

    A bare integer means iterations. Epochs become iterations once the size of the
    training split and the batch are known (``to_iterations``).
    """

    _PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(it|ep)\s*$")

    def __init__(self, amount: float, unit: Literal["it", "ep"]):
        if amount > 2**62:  # iteration counters are int64 in torch and MLflow
            raise ValueError("a duration must be at most 2^62 iterations or epochs")
        if amount < 0 or not math.isfinite(amount):
            raise ValueError("a duration must be a finite number >= 0")
        if unit == "it" and amount != int(amount):
            raise ValueError("iterations must be a whole number")
        self.amount, self.unit = amount, unit

    @classmethod
    def parse(cls, value: Any) -> Duration:
        """Parse ``"500it"``, ``"2ep"``, ``"0.5ep"`` or an int (iterations)."""
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool):
            raise ValueError("expected a duration like '500it' or '2ep'")
        if isinstance(value, int):
            return cls(value, "it")
        if isinstance(value, str):
            match = cls._PATTERN.match(value)
            if match:
                return cls(float(match.group(1)), match.group(2))  # type: ignore[arg-type]
        raise ValueError(f"expected a duration like '500it' or '2ep', got {value!r}")

    def to_iterations(self, iterations_per_epoch: int) -> int:
        """This duration in iterations, given the length of an epoch."""
        if self.unit == "it":
            return int(self.amount)
        return int(round(self.amount * iterations_per_epoch))

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}"

    def __repr__(self) -> str:
        return f"Duration({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler):
        return {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?(it|ep)$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": "iterations ('50000it' or an int) or epochs ('40ep')",
        }


class ExperimentSection(Strict):
    """Identity and repetition of the experiment."""

    name: str = Field(default="experiment", min_length=1, max_length=NAME_MAX,
                      description="experiment name")
    seed: int = Field(default=0, ge=0, description="base seed; every other seed derives from it")
    replicates: int = Field(default=1, ge=1, le=1000, description="independent repetitions")


class Schedule(Strict):
    """Learning-rate schedule: linear warmup, then x gamma at each milestone."""

    warmup: Duration = Field(default=Duration(0, "it"), description="linear warmup from 0")
    milestones: list[Duration] = Field(default_factory=list)
    gamma: float = Field(default=0.1, gt=0)


class Training(Strict):
    """How each network of each level is trained."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(default=1.2e-3, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="sgd only")
    nesterov: bool = Field(default=False, description="sgd only; needs momentum > 0")
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=60, ge=1)
    duration: Duration = Field(default=Duration(50000, "it"))
    schedule: Schedule = Field(default_factory=Schedule)
    eval_every: int = Field(default=1000, ge=1, description="iterations between evaluations")
    population: Literal["auto", "on", "off"] = Field(
        default="auto", description="train a level's networks as one vectorised population; "
        "auto: on a GPU, for networks without batch norm")
    precision: Literal["fp32", "bf16", "tf32"] = Field(
        default="fp32", description="fp32: IEEE float32; bf16: bfloat16 autocast of the forward "
        "pass (CPU and CUDA); tf32: TensorFloat-32 matrix products and convolutions on CUDA "
        "(float32 on the CPU)")
    channels_last: bool = Field(
        default=False, description="convolutional networks in channels-last memory format")
    compile: bool = Field(
        default=False, description="torch.compile the training forward pass (compiles once "
        "per process; networks then train one at a time, not as a population)")
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto", description="CPU threads torch uses while training; auto: one per "
        "2G multiply-adds of a step, within this process's share of the cores")
    on_divergence: Literal["stop", "skip"] = Field(
        default="stop", description="a NaN or infinite loss stops the experiment, or skips that "
        "branch (a diverged ticket ends its replicate)")

    @field_validator("population", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean: ``population: on`` means "on".
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("duration")
    @classmethod
    def _trains_at_all(cls, duration: Duration) -> Duration:
        if duration.amount <= 0:
            raise ValueError("a training duration must be greater than 0")
        return duration

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Training:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        return self


class Fractions(Strict):
    """Fraction of the remaining weights pruned per level, per layer kind.

    ``null`` leaves that kind of layer dense.
    """

    conv: float | None = Field(default=0.2, gt=0, lt=1)
    linear: float | None = Field(default=0.2, gt=0, lt=1)
    output: float | None = Field(default=0.1, gt=0, lt=1)

    def for_kind(self, kind: str) -> float | None:
        """The per-level fraction of a layer kind ('conv', 'linear' or 'output')."""
        return getattr(self, kind)


class Pruning(Strict):
    """Which weights each level removes."""

    criterion: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="magnitude"))
    scope: Literal["layerwise", "global"] = Field(
        default="layerwise",
        description="layerwise: each layer by its own rate; global: one threshold per layer kind",
    )
    strategy: Literal["iterative", "oneshot"] = Field(
        default="iterative",
        description="iterative: prune the remaining weights level after level; "
        "oneshot: each level prunes the dense trained network to its density at once",
    )
    # 100 levels of even 10% leave 0.003% of the weights: more is a typo, not a study.
    levels: int = Field(default=5, ge=1, le=100,
                        description="pruned levels after the dense level 0")
    fraction: Fractions = Field(default_factory=Fractions)
    exclude: list[str] = Field(default_factory=list, description="layer names never pruned")


class Tracking(Strict):
    """Where and what to log. Not part of the spec hash."""

    uri: str | None = Field(default=None, description="MLflow tracking URI")
    experiment: str | None = Field(default=None, min_length=1, max_length=NAME_MAX,
                                   description="MLflow experiment; default: name")
    log_models: Literal["all", "final", "none"] = Field(
        default="all", description="ticket levels logged as MLflow models"
    )
    log_state_dicts: bool = Field(default=True, description="trained state_dict artifacts")
    model_format: Literal["pickle", "pt2"] = Field(
        default="pickle", description="logged models: pickle (fast; loading them needs "
        "lth-suite and the architecture's plugin installed) or pt2 (torch.export: loads "
        "without them, several seconds more per run)")


class ExperimentSpec(Strict):
    """A whole lottery-ticket experiment."""

    experiment: ExperimentSection = Field(default_factory=ExperimentSection)
    model: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="mlp"))
    dataset: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="digits"))
    training: Training = Field(default_factory=Training)
    pruning: Pruning = Field(default_factory=Pruning)
    rewind: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="init"))
    controls: Controls = Field(default_factory=Controls)
    sparsity: Sparsity | None = Field(
        default=None, description="layer-wise allocation, N:M patterns, dynamic sparse training")
    analyzers: list[ComponentSpec] = Field(default_factory=list)
    tracking: Tracking = Field(default_factory=Tracking)
    report: Report = Field(default_factory=Report)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    launcher: ComponentSpec = Field(
        default_factory=lambda: ComponentSpec(name="local"),
        description="what runs the trainings: local (in this process) or ray (a cluster); "
        "not part of the spec hash")

    @model_validator(mode="after")
    def _report_levels_exist(self) -> ExperimentSpec:
        for field in ("levels", "control_levels"):
            beyond = [lv for lv in getattr(self.report, field) or [] if lv > self.pruning.levels]
            if beyond:
                raise ValueError(f"report.{field}: level {beyond[0]} is beyond pruning.levels "
                                 f"({self.pruning.levels})")
        return self

    @model_validator(mode="after")
    def _dynamic_then_iterative(self) -> ExperimentSpec:
        if self.sparsity is not None and self.sparsity.dynamic is not None \
                and self.pruning.strategy == "oneshot":
            raise ValueError("sparsity.dynamic: the levels after dynamic sparse training prune "
                             "its network: pruning.strategy must be iterative")
        return self

    def components(self) -> list[tuple[str, str, ComponentSpec]]:
        """Every plugin component as (field path, registry kind, component)."""
        found = [
            ("model", "architecture", self.model),
            ("dataset", "dataset", self.dataset),
            ("pruning.criterion", "criterion", self.pruning.criterion),
            ("rewind", "rewind", self.rewind),
        ]
        found += self.sparsity.components() if self.sparsity is not None else []
        found += [(f"analyzers.{i}", "analyzer", a) for i, a in enumerate(self.analyzers)]
        found.append(("launcher", "launcher", self.launcher))
        return found
