"""Sweeps: one base spec, many points of ``--set``-style overrides, one MLflow experiment.

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
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import LthError, SpecError
from ..plugins.manager import Plugins
from ..spec.model import ExperimentSpec
from ..spec.loading import _problems, apply_overrides, build_spec, read_yaml, spec_hash

if TYPE_CHECKING:
    from ..lottery.progress import Progress
    from ..tracking import Tracker

SWEEP_ID_TAG, SWEEP_POINT_TAG = "lth_suite.sweep_id", "lth_suite.sweep_point"
SWEEP_INDEX_TAG = "lth_suite.sweep_index"
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

    def tags(self, point: SweepPoint) -> dict[str, str]:
        """The tags of a point's parent run."""
        return {SWEEP_ID_TAG: self.sweep_id, SWEEP_POINT_TAG: json.dumps(point.overrides),
                SWEEP_INDEX_TAG: str(point.index)}


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
    data = read_yaml(path)
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


def check_points(sweep: Sweep, plugins: Plugins) -> None:
    """Prepare every point once (data, model, rewind point) so that none fails later;
    the data are released after each."""
    from ..lottery.experiment import prepare

    for point in sweep.points:
        try:
            prepare(point.spec, plugins)
        except SpecError as exc:
            raise SpecError(exc.problems, f"{sweep.path} point {point.index} ({point.label})") \
                from None
        except LthError as exc:
            raise LthError(f"{sweep.path} point {point.index} ({point.label}): {exc}") from None


def tagging_tracker(uri: str, tags: Mapping[str, str]) -> Tracker:
    """A tracker whose parent run also gets ``tags`` (a sweep's id and point)."""
    from ..tracking import Tracker

    class TaggingTracker(Tracker):
        """Adds the sweep's tags to the parent run it creates."""

        def start_experiment(self, experiment: str, run_name: str, params: Mapping[str, Any],
                             tags: Mapping[str, str], spec_yaml: str) -> str:
            return super().start_experiment(experiment, run_name, params,
                                            {**tags, **extra}, spec_yaml)

    extra = dict(tags)
    return TaggingTracker(uri)


@dataclass
class PointResult:
    """How one point ended."""

    point: SweepPoint
    parent_id: str | None
    summary: list[dict[str, float]] = field(default_factory=list)
    error: LthError | None = None
    skipped: bool = False  # finished by an earlier run of the sweep (``--resume``)


@dataclass(frozen=True)
class EarlierPoint:
    """What an earlier run of the same sweep left of one point."""

    parent_id: str
    finished: bool
    summary: list[dict[str, float]]  # per level: density and the ticket's accuracy


def earlier_points(sweep: Sweep, uri: str) -> dict[int, EarlierPoint]:
    """Per point index, the parent run an earlier run of this sweep left in the store:
    its latest finished one, else its latest. Empty when the sweep never ran there."""
    from ..report.sweep import ACCURACY, load_points, sweep_parents
    from ..tracking import open_reader

    reader = open_reader(uri)
    if not sweep_parents(reader, sweep.sweep_id):
        return {}
    _, curves = load_points(reader, sweep.sweep_id)
    return {curve.index: EarlierPoint(
        curve.run.run_id, curve.run.status == "FINISHED",
        [{"level": float(level), "density": density,
          **({ACCURACY: curve.accuracy[level]} if level in curve.accuracy else {})}
         for level, density in sorted(curve.density.items())]) for curve in curves}


def run_sweep(sweep: Sweep, plugins: Plugins, uri: str,
              progress: Callable[[int], Progress] | None = None,
              announce: Callable[[SweepPoint, str], None] | None = None,
              resume: bool = False) -> list[PointResult]:
    """Run every point: one after another in process (``local``), or all points' units
    submitted together through the launcher. A failing point does not stop the others.

    ``progress(trainings)`` makes the progress display of one point (``local``) or of
    the whole sweep; ``announce(point, what)`` says what happens to a point as it starts
    (``local``) or before the launcher gets the points. With ``resume``, a point an
    earlier run of this sweep finished is skipped and an unfinished one is resumed.
    """
    from .driver import check_launcher
    from ..tracking import open_tracker

    launcher = check_launcher(sweep.points[0].spec, plugins, uri)
    open_tracker(uri)  # an unusable store fails here, before any run exists
    earlier = earlier_points(sweep, uri) if resume else {}
    done = {point.index: PointResult(point, earlier[point.index].parent_id,
                                     earlier[point.index].summary, skipped=True)
            for point in sweep.points
            if point.index in earlier and earlier[point.index].finished}
    resumed = {index: found.parent_id for index, found in earlier.items() if index not in done}

    def say(point: SweepPoint) -> None:
        if announce is not None:
            announce(point, "finished earlier: skipped" if point.index in done else
                     f"resuming parent run {resumed[point.index]}"
                     if point.index in resumed else "running")

    if launcher.in_process:
        results = []
        for point in sweep.points:
            say(point)
            results.append(done.get(point.index) or _run_local(
                sweep, point, plugins, uri, progress, resumed.get(point.index)))
        return results
    from .driver import Driver, Planned, unit_graph

    for point in sweep.points:
        say(point)
    todo = [point for point in sweep.points if point.index not in done]
    plans = [Planned(point.spec, tagging_tracker(uri, sweep.tags(point)),
                     resume_id=resumed.get(point.index), label=f"p{point.index} ")
             for point in todo]
    total = sum(len(unit_graph(point.spec)) for point in todo)
    ran = Driver(plugins, launcher, uri, progress(total) if progress else None).run(plans) \
        if plans else []
    for point, result in zip(todo, ran, strict=True):
        done[point.index] = PointResult(point, result.parent_id, result.finished.summary
                                        if result.finished else [], result.error)
    return [done[point.index] for point in sweep.points]


def _run_local(sweep: Sweep, point: SweepPoint, plugins: Plugins, uri: str,
               progress: Callable[[int], Progress] | None,
               resume_id: str | None) -> PointResult:
    from ..lottery.experiment import prepare
    from ..lottery.runner import LotteryRunner

    tracker = tagging_tracker(uri, sweep.tags(point))
    try:
        experiment = prepare(point.spec, plugins)
        shown = progress(experiment.trainings()) if progress else None
        try:
            finished = LotteryRunner(experiment, tracker, shown, resume=resume_id).run()
        finally:
            if shown is not None:
                shown.stop()
    except LthError as error:  # the runner ended the point's runs FAILED
        return PointResult(point, tracker.parent_id, error=error)
    return PointResult(point, finished.parent_run_id, finished.summary)
