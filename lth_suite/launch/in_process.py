"""Executing an experiment in this process: the in-memory runner, level by level.

The launcher's job runs one unit at a time; the first unit of a level trains the whole
level (one network at a time, as one population, or side by side on the launcher's
worker pool) and the level's other units read its results.
"""

from __future__ import annotations

from ..errors import LthError, TrackingError
from ..lottery.events import BranchResult
from ..lottery.experiment import prepare
from ..lottery.progress import SilentProgress
from ..lottery.runner import LotteryRunner
from ..parallel.units import Job, Launcher, Unit
from ..plugins.manager import Plugins
from ..tracking.uris import store_failure
from .plans import ExperimentPlan, ProgressFactory, Result, unit_graph


class LevelByLevel:
    """An in-process job's unit runner: the first unit of a level trains the whole level
    (one network at a time or as one population); the level's other units read it."""

    def __init__(self, runner: LotteryRunner):
        self.runner, self.level = runner, -1
        self.results: dict[tuple[int, str], BranchResult] = {}

    def __call__(self, unit: Unit) -> BranchResult | None:
        """The unit's result; None for a training skipped as diverged."""
        if unit.level != self.level:
            event = self.runner.run_level(unit.level)
            self.level = unit.level
            self.results = {(b.replicate, b.branch): b for b in event.branches}
        return self.results.get((unit.replicate, unit.branch))


def run_in_process(plan: ExperimentPlan, plugins: Plugins, launcher: Launcher,
                progress: ProgressFactory | None) -> Result:
    """Run one experiment in this process through the launcher."""
    try:
        experiment = plan.experiment or prepare(plan.spec, plugins)
    except LthError as error:
        return Result("", error=error)
    shown = (progress(experiment.trainings()) if progress is not None else None) or SilentProgress()
    runner = LotteryRunner(experiment, plan.tracker, shown, resume=plan.resume_id,
                           pool=launcher.pool)
    graph = unit_graph(plan.spec)  # whole: the runner itself restores what is done
    try:
        try:
            plan.parent_id = runner.open_parent()
            outcome = launcher.launch([Job(graph, LevelByLevel(runner), plan.label)])[0]
            if outcome.error is not None:
                raise outcome.error
            finished = runner.finish()
        except BaseException as exc:
            plan.parent_id = plan.parent_id or plan.tracker.parent_id  # created, then stopped
            stuck = runner.recorder.end_all(exc)
            store = stopped_by_store(exc, stuck, plan)
            if store is None:
                raise
            raise store from exc
    except LthError as error:
        return Result(plan.parent_id or "", error=error, units=len(graph),
                      seconds=shown.elapsed())
    finally:
        shown.stop()
    return Result(finished.parent_run_id or "", finished, units=len(graph),
                  seconds=shown.elapsed())


def stopped_by_store(error: BaseException, stuck: list[str],
                     plan: ExperimentPlan) -> TrackingError | None:
    """A one-line error when the store stopped accepting writes, saying what became of the
    runs and how to go on; None when something else stopped the experiment."""
    why = None if isinstance(error, (LthError, KeyboardInterrupt)) else store_failure(error)
    if why is None:
        return None
    runs = (f"{len(stuck)} run(s) could not be ended and stay RUNNING until "
            if stuck else "the open runs were ended FAILED; ")
    resume = (f"lth-suite resume {plan.parent_id} --tracking-uri {plan.tracker.uri}"
              if plan.parent_id else "run it again")
    return TrackingError(f"the tracking store stopped accepting writes ({why}); {runs}"
                         f"free space or make the store writable, then: {resume}")
