"""The one way experiments execute: ``execute`` hands every experiment to its launcher.

An in-process launcher (``local``) receives one experiment at a time; its units are
trained by the in-memory runner, the first unit of a level training the whole level (as
one population when the experiment allows, or side by side in the worker processes the
launcher's ``pool`` offers). Other launchers (``ray``) receive every experiment's units
at once and run them in worker processes that share the tracking store; each experiment
is then finished here, in the driver, from its checkpoints: the per-level summaries,
analyzers and hooks, and the parent run ended FINISHED.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ..errors import LthError, TrackingError
from ..lottery.checkpoints import key_of
from ..lottery.child_runs import describe, ending
from ..lottery.events import BranchResult, ExperimentFinished
from ..lottery.experiment import Experiment, prepare
from ..lottery.progress import Progress, SilentProgress
from ..lottery.runner import LotteryRunner
from ..plugins.manager import LOAD_ENV, Plugins
from ..spec.loading import to_yaml
from ..spec.sections import ExperimentSpec
from ..tracking import Tracker, open_tracker
from ..tracking.uris import store_failure
from .units import Job, Launcher, Outcome, Unit, UnitGraph
from .worker import UnitJob

# Stores that processes on other machines can share: servers and database backends.
SHARED_SCHEMES = ("http", "https", "databricks", "postgresql", "mysql", "mssql", "oracle")

ProgressFactory = Callable[[int], Progress]
"""Makes the progress display of a number of trainings."""


def check_tracking_uri(uri: str, launcher: str) -> None:
    """Refuse a store that units in other processes cannot share (sqlite, local paths)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in SHARED_SCHEMES:
        return
    raise LthError(f"tracking.uri / --tracking-uri {uri}: launcher '{launcher}' trains in "
                   "other processes, which need a shared tracking store: an MLflow server "
                   "(http://HOST:5000) or a database (postgresql://...), not a local file")


def check_launcher(spec: ExperimentSpec, plugins: Plugins, uri: str | None,
                   start: bool = False) -> Launcher:
    """The spec's launcher, once it can run this spec against ``uri``; else an LthError.

    Checked before any run is created: the launcher's package is installed (its factory
    checks), the store is shared when units leave this process, and the launcher takes
    the spec (its optional ``check_spec``). With ``start``, a launcher with a
    ``start(spec)`` method (worker processes to start) is then started, so that it gets
    ready while the data loads; else it starts when the experiments execute.
    """
    launcher: Launcher = plugins.registry.build("launcher", spec.launcher.name,
                                                spec.launcher.params)
    if not launcher.in_process and uri is not None:
        check_tracking_uri(uri, spec.launcher.name)
    getattr(launcher, "check_spec", lambda spec: None)(spec)
    starting = getattr(launcher, "start", None)
    if start and callable(starting):
        starting(spec)
    return launcher


def unit_graph(spec: ExperimentSpec) -> UnitGraph:
    """The units of an experiment and what each one waits for."""
    return UnitGraph.build(spec.experiment.replicates, spec.pruning.levels,
                           spec.controls.enabled(),
                           dense_controls=spec.sparsity is not None and spec.sparsity.dynamic is not None)


@dataclass
class ExperimentPlan:
    """One experiment to execute: its spec and the tracker its parent run uses.

    ``experiment`` may be left None: it is prepared when needed and released after, so
    a sweep does not hold every point's data at once. ``resume_id`` continues a parent.
    """

    spec: ExperimentSpec
    tracker: Tracker
    experiment: Experiment | None = None
    resume_id: str | None = None
    label: str = ""
    parent_id: str | None = None
    done: frozenset[Unit] = frozenset()


@dataclass
class Result:
    """How one experiment ended: finished, or the error that stopped it."""

    parent_id: str
    finished: ExperimentFinished | None = None
    error: LthError | None = None
    units: int = 0  # units the launcher ran (a resume skips finished ones out of process)
    seconds: float = 0.0  # wall time of the experiment in this process


def execute(plans: Sequence[ExperimentPlan], plugins: Plugins, launcher: Launcher, uri: str,
            progress: ProgressFactory | None = None,
            starting: Callable[[ExperimentPlan], None] | None = None) -> list[Result]:
    """Run (or resume) every planned experiment through ``launcher``; one Result each.

    An experiment stopped by an ``LthError`` ends its runs FAILED and the others go on;
    ``KeyboardInterrupt`` ends every open run KILLED and propagates. ``starting(plan)``
    is told as each experiment starts (in process) or before the units are launched.
    """
    session: AbstractContextManager[Any] = (
        launcher if hasattr(launcher, "__enter__") else nullcontext())
    tell = starting or (lambda plan: None)
    with session:  # a cluster that cannot be reached fails before any run exists
        if launcher.in_process:
            results = []
            for plan in plans:  # one experiment after another, each told as it starts
                tell(plan)
                results.append(_in_process(plan, plugins, launcher, progress))
            return results
        for plan in plans:
            tell(plan)
        return _out_of_process(list(plans), plugins, launcher, uri, progress)


def run_experiment(spec: ExperimentSpec, plugins: Plugins, tracking_uri: str,
                   progress: Progress | None = None, resume: str | None = None,
                   ) -> ExperimentFinished:
    """Run (or resume) one validated spec through its launcher: the Python API.

    Raises the ``LthError`` that stopped it (its runs then ended FAILED).
    """
    launcher = check_launcher(spec, plugins, tracking_uri, start=True)
    plan = ExperimentPlan(spec, open_tracker(tracking_uri), resume_id=resume)
    shown = (lambda trainings: progress) if progress is not None else None
    result = execute([plan], plugins, launcher, tracking_uri, shown)[0]
    if result.error is not None:
        raise result.error
    assert result.finished is not None
    return result.finished


# --------------------------------------------------------------------------------------
# In process: the in-memory runner, level by level
# --------------------------------------------------------------------------------------
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


def _in_process(plan: ExperimentPlan, plugins: Plugins, launcher: Launcher,
                progress: ProgressFactory | None) -> Result:
    """Run one experiment in this process through the launcher."""
    try:
        experiment = plan.experiment or prepare(plan.spec, plugins)
    except LthError as error:
        return Result("", error=error)
    shown = progress(experiment.trainings()) if progress is not None else SilentProgress()
    runner = LotteryRunner(experiment, plan.tracker, shown, resume=plan.resume_id,
                           pool=getattr(launcher, "pool", None))
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


# --------------------------------------------------------------------------------------
# Out of process: units in workers, each experiment finished here from its checkpoints
# --------------------------------------------------------------------------------------
def _out_of_process(plans: list[ExperimentPlan], plugins: Plugins, launcher: Launcher,
                    uri: str, progress: ProgressFactory | None) -> list[Result]:
    # Imported here, in the main thread: torch's import is not thread-safe, and the
    # launcher's threads (Ray's among them) would otherwise race to import it first.
    import torch  # noqa: F401

    finishing = SilentProgress()  # the finishing steps' progress: keeps the wall time
    shown: Progress | None = None
    try:
        jobs = [_open(plan, plugins, uri) for plan in plans]
        if progress is not None:  # counted once opened: a resume runs fewer units
            shown = progress(sum(len(job.graph) for job in jobs))
            for plan, job in zip(plans, jobs):
                job.on_done = _reporter(plan, shown)
        outcomes = launcher.launch(jobs)
    except BaseException as exc:
        for plan in plans:
            _end_plan(plan, exc)
        raise
    finally:
        if shown is not None:
            shown.stop()
    return _finish_all(plans, jobs, outcomes, plugins, uri, finishing)


def _finish_all(plans: list[ExperimentPlan], jobs: list[Job], outcomes: list[Outcome],
                plugins: Plugins, uri: str, finishing: Progress) -> list[Result]:
    """Finish each experiment whose units all ran; end the others FAILED."""
    results = []
    for index, (plan, outcome, job) in enumerate(zip(plans, outcomes, jobs, strict=True)):
        if outcome.error is not None:
            error = _as_lth_error(outcome.error)
            _end_plan(plan, error)
            results.append(Result(plan.parent_id or "", error=error, units=len(job.graph)))
            continue
        try:
            experiment = plan.experiment or prepare(plan.spec, plugins)
            finished = LotteryRunner(experiment, open_tracker(uri), finishing,
                                     resume=plan.parent_id, mark_resumed=False).run()
        except KeyboardInterrupt as exc:
            for later in plans[index + 1:]:
                _end_plan(later, exc)
            raise
        except Exception as exc:  # the runner ended its runs FAILED; the others go on
            results.append(Result(plan.parent_id or "", error=_as_lth_error(exc),
                                  units=len(job.graph)))
            continue
        results.append(Result(plan.parent_id or "", finished, units=len(job.graph),
                              seconds=finishing.elapsed()))
    return results


def _open(plan: ExperimentPlan, plugins: Plugins, uri: str) -> Job:
    """Create (or reopen) the parent run and build the job of the units left to run."""
    if plan.resume_id:
        plan.tracker.resume_experiment(plan.resume_id)
        plan.parent_id = plan.resume_id
        plan.done = frozenset(Unit(*key_of(child.params))
                              for child in plan.tracker.reader.finished_children(plan.resume_id))
    else:
        experiment = plan.experiment or prepare(plan.spec, plugins)
        # the same parent run, params and tags as an in-process run creates
        plan.parent_id = LotteryRunner(experiment, plan.tracker).open_parent()
    graph = unit_graph(plan.spec).without(plan.done)
    execute_unit = UnitJob(to_yaml(plan.spec), uri, plan.parent_id, os.environ.get(LOAD_ENV))
    return Job(graph, execute_unit, plan.label)


def _reporter(plan: ExperimentPlan, progress: Progress) -> Callable[[Unit, Any], None]:
    def report(unit: Unit, result: Any) -> None:
        if result is None:
            progress.note(f"{plan.label}{unit.name} diverged: left to the finishing step")
        else:
            progress.end(f"{plan.label}{unit.name}", result.summary)

    return report


def _end_plan(plan: ExperimentPlan, error: BaseException) -> None:
    """End the children a unit left RUNNING KILLED, then the parent: KILLED when
    interrupted, else FAILED naming the error."""
    plan.parent_id = plan.parent_id or plan.tracker.parent_id  # created, then stopped
    if plan.parent_id is None:
        return
    status, reason = ending(error)
    plan.tracker.end_running_children(plan.parent_id, reason)
    plan.tracker.end_all(status, reason)


def _as_lth_error(exc: BaseException) -> LthError:
    if isinstance(exc, LthError):
        return exc
    error = LthError(describe(exc))
    error.exit_code = 1
    return error
