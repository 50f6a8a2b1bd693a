"""What the runner reports to lifecycle hooks, analyzers and the tracker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..pruning.masks import Layer, Mask
from ..tracking.names import DENSITY
from ..training.result import TrainResult


@dataclass
class BranchResult:
    """One finished training: (replicate, level, branch)."""

    replicate: int
    level: int
    branch: str
    mask: Mask
    result: TrainResult
    run_id: str | None = None
    restored: bool = False  # read back from MLflow when an experiment resumed

    @property
    def summary(self) -> dict[str, float]:
        """Early-stop and final metrics, plus the density."""
        return {**self.result.summary(), DENSITY: self.mask.density()}


@dataclass
class LevelFinished:
    """Every replicate and branch of one level, after all of them trained."""

    spec: Any  # ExperimentSpec
    level: int
    layers: list[Layer]
    branches: list[BranchResult]
    init_states: dict[int, dict[str, Any]] = field(default_factory=dict)  # per replicate
    parent_run_id: str | None = None
    # per replicate, the weights and schedule position this level's ticket trained from
    rewind_points: dict[int, Any] = field(default_factory=dict)
    experiment: Any = None  # lth_suite.lottery.experiment.Experiment: data, config, build_model

    def of(self, branch: str) -> list[BranchResult]:
        """The results of one branch, by replicate."""
        return sorted((b for b in self.branches if b.branch == branch), key=lambda b: b.replicate)


@dataclass
class ExperimentFinished:
    """The whole experiment, after its last level."""

    spec: Any  # ExperimentSpec
    spec_hash: str
    levels: list[LevelFinished]
    parent_run_id: str | None = None
    summary: list[dict[str, float]] = field(default_factory=list)  # one row per level
