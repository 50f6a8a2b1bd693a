"""Sweep files: one base spec, many points of ``--set``-style overrides, one MLflow experiment.

A sweep file::

    base: quickstart.yaml             # relative to the sweep file
    experiment: seeds-and-rewinds     # the MLflow experiment; default: the file's stem
    grid:                             # the cartesian product of these values ...
      experiment.seed: [0, 1]
      rewind: [init, lr]
    points:                           # ... and/or these points, one mapping each
      - {pruning.fraction.linear: 0.5}

Every point is an experiment with its own parent run, tagged ``lth_suite.sweep_id``
(a stable hash of the resolved points) and ``lth_suite.sweep_point`` (its overrides).
Reading and validating the file lives here, apart from running it (``launch/sweep.py``),
so that the sweep report can name points without importing the launchers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import LthError, SpecError
from ..plugins.manager import Plugins
from .loading import _problems, apply_overrides, build_spec, read_yaml, spec_hash
from .sections import ExperimentSpec

SHARED_SECTIONS = ("launcher", "tracking")  # the sweep's, not a point's


class SweepFile(BaseModel):
    """The sweep file: a base spec and the overrides of every point."""

    model_config = ConfigDict(extra="forbid")
    base: str = Field(min_length=1, description="the base spec, relative to the sweep file")
    experiment: str | None = Field(default=None, min_length=1,
                                   description="MLflow experiment; default: the file's stem")
    grid: dict[str, list[Any]] = Field(default_factory=dict,
                                       description="key -> values: the cartesian product")
    points: list[dict[str, Any]] = Field(default_factory=list,
                                         description="further points, one mapping each")


@dataclass(frozen=True)
class SweepPoint:
    """One experiment of a sweep: its overrides and its validated spec."""

    index: int
    overrides: dict[str, Any]
    spec: ExperimentSpec

    @property
    def label(self) -> str:
        """The overrides as ``key=value`` pairs, or ``base``."""
        return point_label(self.overrides)


def point_label(overrides: Mapping[str, Any]) -> str:
    """``experiment.seed=1 rewind=lr``: how a point is named in tables and legends."""
    if not overrides:
        return "base"
    return " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in overrides.items())


@dataclass(frozen=True)
class Sweep:
    """A resolved sweep: every point validated, the MLflow experiment and the sweep id."""

    path: Path
    experiment: str
    points: list[SweepPoint]
    sweep_id: str

    @property
    def launcher(self) -> str:
        """The launcher every point runs through."""
        return self.points[0].spec.launcher.name


def expand(grid: Mapping[str, Sequence[Any]], points: Sequence[Mapping[str, Any]],
           ) -> list[dict[str, Any]]:
    """The grid's cartesian product (first key slowest), then the listed points."""
    keys = list(grid)
    found = [dict(zip(keys, values)) for values in itertools.product(*grid.values())] \
        if keys else []
    return found + [dict(point) for point in points]


def _override_strings(overrides: Mapping[str, Any]) -> list[str]:
    """``--set`` strings; JSON values parse back as the same YAML values."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def load_sweep(path: Path, plugins: Plugins, overrides: Sequence[str] = ()) -> Sweep:
    """Read a sweep file and validate every point's spec; errors name the point and field.

    ``overrides`` (``--set``) apply to the base, before each point's own.
    """
    data = read_yaml(path, "sweep file")
    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(exc), str(path)) from None
    empty = [key for key, values in sweep.grid.items() if not values]
    if empty:
        raise SpecError([(f"grid.{empty[0]}", "expected a non-empty list of values")], str(path))
    everything = expand(sweep.grid, sweep.points)
    if not everything:
        raise SpecError([("grid", "a sweep needs a grid or points")], str(path))
    base = apply_overrides(read_yaml(path.parent / sweep.base), overrides)
    experiment = sweep.experiment or path.stem
    points, problems = [], []
    for index, point in enumerate(everything):
        source = f"{path} point {index} ({point_label(point)})"
        shared = [key for key in point if key.split(".")[0] in SHARED_SECTIONS]
        if shared:
            problems.append(f"{source}: {shared[0]}: launcher and tracking are the sweep's; "
                            "set them in the base spec or with --set")
            continue
        try:
            spec_data = apply_overrides(base, _override_strings(point))
            spec_data = apply_overrides(spec_data, _override_strings(
                {"tracking.experiment": experiment}))
            points.append(SweepPoint(index, point, build_spec(spec_data, plugins.registry,
                                                              source)))
        except SpecError as exc:
            problems += exc.lines()
        except LthError as exc:
            problems.append(f"{source}: {exc}")
    if problems:
        raise _Problems(problems)
    seen: dict[str, SweepPoint] = {}
    for point in points:
        first = seen.setdefault(spec_hash(point.spec), point)
        if first is not point:
            raise LthError(f"{path}: points {first.index} ({first.label}) and {point.index} "
                           f"({point.label}) are the same experiment")
    resolved = [{"overrides": p.overrides, "spec_hash": spec_hash(p.spec)} for p in points]
    sweep_id = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]
    return Sweep(path, experiment, points, sweep_id)


class _Problems(LthError):
    """Several problems, one line each."""

    def __init__(self, lines: list[str]):
        super().__init__("; ".join(lines))
        self._lines = lines

    def lines(self) -> list[str]:
        return list(self._lines)
