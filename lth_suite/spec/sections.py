"""The experiment spec: one pydantic model per section, strict everywhere.

Plugin sections (model, dataset, criterion, rewind, analyzers, launcher) are written flat in
YAML, ``{name: magnitude, some_param: 1}``; their params are validated against the
plugin's own params model when the spec is resolved (see ``spec.loading``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_serializer, model_validator

from .base import ComponentSpec, ModelSpec, Strict
from .controls import Controls
from .duration import Duration
from .recipes import OptimizerSpec, without_defaults
from .report import Report
from .sparsity import Sparsity

__all__ = ["ComponentSpec", "Duration", "ExperimentSpec", "ModelSpec", "Pruning", "Training"]

# Names become run names and folder names: bounded well below the 255 bytes a file name may have.
NAME_MAX = 200
DEFAULT_TASK = "classification"


class ExperimentSection(Strict):
    """Identity and repetition of the experiment."""

    name: str = Field(default="experiment", min_length=1, max_length=NAME_MAX,
                      description="experiment name")
    seed: int = Field(default=0, ge=0, description="base seed; every other seed derives from it")
    replicates: int = Field(default=1, ge=1, le=1000, description="independent repetitions")


class Schedule(Strict):
    """Learning-rate schedule: linear warmup, then x gamma at each milestone, or a decay."""

    warmup: Duration = Field(default=Duration(0, "it"), description="linear warmup from 0")
    milestones: list[Duration] = Field(default_factory=list)
    gamma: float = Field(default=0.1, gt=0)
    decay: ComponentSpec | None = Field(
        default=None, description="after the warmup, a registered decay over the rest of "
        "the training (cosine, linear) in place of the milestones; null: the milestones")

    @model_serializer(mode="wrap")
    def _new_fields_only_when_set(self, handler: Any) -> dict[str, Any]:
        return without_defaults(handler(self), {"decay": None})

    @model_validator(mode="after")
    def _milestones_or_decay(self) -> Schedule:
        if self.decay is not None and self.milestones:
            raise ValueError("schedule: give milestones or a decay, not both")
        return self


class Training(Strict):
    """How each network of each level is trained."""

    optimizer: OptimizerSpec = Field(
        default_factory=lambda: OptimizerSpec(name="adam"),
        description="a registered optimizer: sgd, adam, adamw (decoupled weight decay), ...")
    lr: float = Field(default=1.2e-3, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="sgd only")
    nesterov: bool = Field(default=False, description="sgd only; needs momentum > 0")
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=60, ge=1)
    duration: Duration = Field(default=Duration(50000, "it"))
    schedule: Schedule = Field(default_factory=Schedule)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1,
                                   description="of the training loss (evaluation is unsmoothed)")
    clip_grad_norm: float | None = Field(
        default=None, gt=0, description="clip the gradients' global norm to this before "
        "each step (after pruned weights' gradients are zeroed); null: no clipping")
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
        if self.nesterov and (self.optimizer.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        return self

    @model_serializer(mode="wrap")
    def _new_fields_only_when_set(self, handler: Any) -> dict[str, Any]:
        return without_defaults(handler(self), {"label_smoothing": 0.0, "clip_grad_norm": None})


Fraction = Annotated[float, Field(gt=0, lt=1)]


def _patterns_as_keys(schema: dict[str, Any]) -> None:
    """The schema as a spec writes it: patterns are keys beside the kinds."""
    schema["additionalProperties"] = schema["properties"].pop("patterns")["additionalProperties"]


class Fractions(Strict):
    """Fraction of the remaining weights pruned per level, per layer kind or name pattern.

    ``null`` leaves that kind of layer dense. Any other key is a glob pattern over
    parameter or module names (``"blocks.*.attn.*": 0.2``, ``head: 0.1``), or a layer kind
    a plugin declares; the first key that matches a prunable tensor, in the order written,
    decides its fraction, before the kind's. A key that is a parameter's exact name makes
    that parameter prunable even where it is not by default (a norm, a positional
    embedding, a class token); a pattern with wildcards only sets fractions.
    """

    model_config = ConfigDict(**Strict.model_config, json_schema_extra=_patterns_as_keys)
    conv: float | None = Field(default=0.2, gt=0, lt=1)
    linear: float | None = Field(default=0.2, gt=0, lt=1)
    output: float | None = Field(default=0.1, gt=0, lt=1)
    patterns: dict[str, Fraction | None] = Field(
        default_factory=dict, description="written beside the kinds, as keys of fraction")

    @model_validator(mode="before")
    @classmethod
    def _patterns_beside_kinds(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "patterns" in data:
            return data
        kinds = {k: v for k, v in data.items() if k in ("conv", "linear", "output")}
        patterns = {k: v for k, v in data.items() if k not in kinds}
        return {**kinds, "patterns": patterns} if patterns else kinds

    @model_serializer(mode="wrap")
    def _flat(self, handler: Any) -> dict[str, Any]:
        # Written flat, so a spec without patterns keeps its canonical form and hash.
        data = handler(self)
        patterns = data.pop("patterns")
        return {**data, **patterns}

    def for_kind(self, kind: str) -> float | None:
        """The per-level fraction of a layer kind (None: never pruned)."""
        if kind in ("conv", "linear", "output"):
            return getattr(self, kind)
        return self.patterns.get(kind)


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
    exclude: list[str] = Field(default_factory=list, description="layer or parameter names, "
                               "or glob patterns over them, never pruned")


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
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name="mlp"))
    dataset: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="digits"))
    task: ComponentSpec = Field(
        default_factory=lambda: ComponentSpec(name=DEFAULT_TASK),
        description="how a batch reaches the model, its loss and its metrics: classification, "
        "causal_lm, sequence_classification, or a plugin's")
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
            ("task", "task", self.task),
            ("training.optimizer", "optimizer", self.training.optimizer),
            ("pruning.criterion", "criterion", self.pruning.criterion),
            ("rewind", "rewind", self.rewind),
        ]
        decay = self.training.schedule.decay
        found += [("training.schedule.decay", "schedule", decay)] if decay is not None else []
        found += self.sparsity.components() if self.sparsity is not None else []
        found += [(f"analyzers.{i}", "analyzer", a) for i, a in enumerate(self.analyzers)]
        found.append(("launcher", "launcher", self.launcher))
        return found
