"""Running a sweep: every point of a sweep file (``spec/sweeps.py``) as its own experiment.

Points run one after another in process (``local``), or all points' units go to the
launcher together; each point's parent run carries the sweep's tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LthError, SpecError
from ..plugins.manager import Plugins
from ..spec.sweeps import Sweep, SweepPoint
from ..tracking.names import SWEEP_ID_TAG, SWEEP_INDEX_TAG, SWEEP_POINT_TAG

if TYPE_CHECKING:
    from ..lottery.progress import Progress
    from ..tracking import Tracker


def check_sweep(sweep: Sweep, plugins: Plugins, uri: str) -> None:
    """Refuse a sweep before any run exists: its launcher cannot run it against ``uri``,
    or a point cannot be prepared."""
    from ..parallel.torchrun import launched
    from .execute import check_launcher

    if launched():  # every rank would run every point on its own
        raise LthError(f"{sweep.path}: a sweep does not run under torchrun; run each point "
                       "with lth-suite run under torchrun")
    check_launcher(sweep.points[0].spec, plugins, uri)
    check_points(sweep, plugins)


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


def point_tags(sweep: Sweep, point: SweepPoint) -> dict[str, str]:
    """The tags of a point's parent run: the sweep, and the point's overrides and index."""
    return {SWEEP_ID_TAG: sweep.sweep_id, SWEEP_POINT_TAG: json.dumps(point.overrides),
            SWEEP_INDEX_TAG: str(point.index)}


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
    """Run every point through ``execute``: one after another in process (``local``), or
    all points' units submitted together. A failing point does not stop the others.

    ``progress(trainings)`` makes the progress display of one point (``local``) or of
    the whole sweep; ``announce(point, what)`` says what happens to each point, in point
    order, as it starts (``local``) or before the launcher gets the points. With
    ``resume``, a point an earlier run of this sweep finished is skipped and an
    unfinished one is resumed.
    """
    from ..tracking import open_tracker
    from .execute import ExperimentPlan, check_launcher, execute

    launcher = check_launcher(sweep.points[0].spec, plugins, uri, start=True)
    open_tracker(uri)  # an unusable store fails here, before any run exists
    earlier = earlier_points(sweep, uri) if resume else {}
    done = {point.index: PointResult(point, earlier[point.index].parent_id,
                                     earlier[point.index].summary, skipped=True)
            for point in sweep.points
            if point.index in earlier and earlier[point.index].finished}
    resumed = {index: found.parent_id for index, found in earlier.items() if index not in done}
    unannounced = list(sweep.points)

    def announce_through(index: int) -> None:
        while unannounced and unannounced[0].index <= index:
            point = unannounced.pop(0)
            if announce is not None:
                announce(point, "finished earlier: skipped" if point.index in done else
                         f"resuming parent run {resumed[point.index]}"
                         if point.index in resumed else "running")

    todo = [point for point in sweep.points if point.index not in done]
    plans = [ExperimentPlan(point.spec, tagging_tracker(uri, point_tags(sweep, point)),
                            resume_id=resumed.get(point.index), label=f"p{point.index} ")
             for point in todo]
    index_of = {id(plan): point.index for plan, point in zip(plans, todo)}
    if not launcher.in_process:  # every point is said before its units are launched
        announce_through(sweep.points[-1].index)
    ran = execute(plans, plugins, launcher, uri, progress,
                  lambda plan: announce_through(index_of[id(plan)])) if plans else []
    announce_through(sweep.points[-1].index)
    for point, result in zip(todo, ran, strict=True):
        done[point.index] = PointResult(point, result.parent_id or None,
                                        result.finished.summary if result.finished else [],
                                        result.error)
    return [done[point.index] for point in sweep.points]
