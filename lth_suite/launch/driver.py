"""The driver of experiments whose units run through a launcher, e.g. as Ray tasks.

The driver creates each experiment's parent run, hands the unit graphs to the
launcher, and then finishes each experiment in this process with a resumed
``LotteryRunner``: it restores every finished branch from MLflow, logs the per-level
summaries and analyzers, and ends the parent run (ending as KILLED any child a dead
worker left RUNNING). Units run anywhere that reaches the tracking store, so the store
must be shared: an MLflow server or a database, never a local sqlite file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Imported here, in the main thread: torch's import is not thread-safe, and the driver's
# launcher threads (Ray's among them) would otherwise race to import it first.
import torch  # noqa: F401,E402

from ..errors import Diverged, LthError
from .units import Job, Launcher, Unit, UnitFailed, UnitGraph
from ..plugins.manager import LOAD_ENV, Plugins, load_plugins
from ..spec.model import ExperimentSpec

if TYPE_CHECKING:
    from ..lottery.events import ExperimentFinished
    from ..lottery.experiment import Experiment
    from ..lottery.progress import Progress
    from ..tracking import Tracker

# Stores that processes on other machines can share: servers and database backends.
SHARED_SCHEMES = ("http", "https", "databricks", "postgresql", "mysql", "mssql", "oracle")
SUMMARY_KEYS = ("early_stop_test_accuracy", "final_test_accuracy", "early_stop_iteration")


def check_tracking_uri(uri: str, launcher: str) -> None:
    """Refuse a store that units in other processes cannot share (sqlite, local paths)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in SHARED_SCHEMES:
        return
    raise LthError(f"tracking.uri / --tracking-uri {uri}: launcher '{launcher}' trains in "
                   "other processes, which need a shared tracking store: an MLflow server "
                   "(http://HOST:5000) or a database (postgresql://...), not a local file")


def check_launcher(spec: ExperimentSpec, plugins: Plugins, uri: str | None) -> Launcher:
    """The spec's launcher, once it can run this spec against ``uri``; else an LthError.

    Checked before any run is created: the launcher's package is installed (its factory
    checks), and the store is shared when units leave this process.
    """
    launcher: Launcher = plugins.registry.build("launcher", spec.launcher.name,
                                                spec.launcher.params)
    if not launcher.in_process and uri is not None:
        check_tracking_uri(uri, spec.launcher.name)
    return launcher


def unit_graph(spec: ExperimentSpec) -> UnitGraph:
    """The units of an experiment and what each one waits for."""
    controls = [name for name, on in (("reinit", spec.controls.reinit),
                                      ("random_prune", spec.controls.random_prune)) if on]
    return UnitGraph.build(spec.experiment.replicates, spec.pruning.levels, controls)


# --------------------------------------------------------------------------------------
# The unit: what runs in a worker process
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitDone:
    """A finished unit: its child run and its summary metrics."""

    run_id: str
    summary: dict[str, float]


_PLUGINS: dict[str | None, Plugins] = {}
_PREPARED: dict[tuple[str, str | None], Any] = {}  # the last few experiments, per process


def _worker_plugins(allowed: str | None) -> Plugins:
    """The plugins the driver loaded (same ``LTH_SUITE_LOAD_PLUGINS``), once per process."""
    if allowed not in _PLUGINS:
        previous = os.environ.get(LOAD_ENV)
        try:
            if allowed is None:
                os.environ.pop(LOAD_ENV, None)
            else:
                os.environ[LOAD_ENV] = allowed
            _PLUGINS[allowed] = load_plugins(warn=False)
        finally:
            if previous is None:
                os.environ.pop(LOAD_ENV, None)
            else:
                os.environ[LOAD_ENV] = previous
    return _PLUGINS[allowed]


@dataclass(frozen=True)
class UnitJob:
    """Trains one unit of an experiment in whatever process calls it (a Ray worker).

    Plain data, so it pickles: the spec as YAML, the store, the parent run, and which
    installed plugins the driver loaded. Every failure becomes a picklable
    ``UnitFailed``; a unit that diverges under ``on_divergence: skip`` returns None.
    """

    spec_yaml: str
    tracking_uri: str
    parent_id: str
    load_plugins: str | None = None

    def _experiment(self) -> Experiment:
        import yaml

        from ..lottery.experiment import prepare
        from ..spec.loading import build_spec

        key = (self.spec_yaml, self.load_plugins)
        if key not in _PREPARED:
            plugins = _worker_plugins(self.load_plugins)
            spec = build_spec(yaml.safe_load(self.spec_yaml), plugins.registry,
                              f"run {self.parent_id} spec")
            if len(_PREPARED) >= 2:  # bound memory: a worker may serve many experiments
                _PREPARED.pop(next(iter(_PREPARED)))
            _PREPARED[key] = prepare(spec, plugins)
        return _PREPARED[key]

    def __call__(self, unit: Unit) -> UnitDone | None:
        """Train the unit (or find it finished) and return its run and summary."""
        from ..lottery.guard import describe
        from ..lottery.runner import LotteryRunner
        from ..tracking import open_tracker

        # MLflow prints a "View run" link per run it ends on a server: noise from workers
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        skip = False
        try:
            experiment = self._experiment()
            skip = experiment.spec.training.on_divergence == "skip"
            tracker = open_tracker(self.tracking_uri)
            run_id = LotteryRunner(experiment, tracker).run_unit(
                self.parent_id, unit.replicate, unit.level, unit.branch)
            if run_id is None:  # a control skipped as diverged
                if skip:
                    return None
                raise UnitFailed(unit.name, "it produced no result")
            run = tracker.get_run(run_id)
        except Diverged as exc:
            if skip:
                return None
            raise UnitFailed(unit.name, str(exc), exc.exit_code) from None
        except UnitFailed:
            raise
        except LthError as exc:
            raise UnitFailed(unit.name, str(exc), exc.exit_code) from None
        except Exception as exc:
            raise UnitFailed(unit.name, describe(exc)) from None
        summary = {k: float(run.data.metrics[k]) for k in SUMMARY_KEYS if k in run.data.metrics}
        summary["density"] = float(run.data.params.get("density", "nan"))
        return UnitDone(run_id, summary)


# --------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------

@dataclass
class Planned:
    """One experiment for the driver: its spec and the tracker its parent run uses.

    ``experiment`` may be left None (it is prepared when needed and then released, so a
    sweep does not hold every point's data at once); ``resume_id`` continues a parent.
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
    units: int = 0  # units the launcher ran (a resume skips the finished ones)


@dataclass
class Driver:
    """Runs planned experiments through a launcher and finishes each in this process."""

    plugins: Plugins
    launcher: Launcher
    tracking_uri: str
    progress: Progress | None = None  # told about every finished unit
    restored_progress: Progress | None = None  # the finishing step's; keeps the wall time
    plans: list[Planned] = field(default_factory=list)

    def run(self, plans: Sequence[Planned]) -> list[Result]:
        """Open the parent runs, launch every unit, finish each experiment; one Result each.

        A unit that fails for good ends its experiment's parent FAILED (the others go
        on); ``KeyboardInterrupt`` cancels the units and ends every open run KILLED.
        """
        from contextlib import nullcontext

        from ..lottery.progress import SilentProgress

        self.plans = list(plans)
        self.restored_progress = self.restored_progress or SilentProgress()
        session = self.launcher if hasattr(self.launcher, "__enter__") else nullcontext()
        with session:  # a cluster that cannot be reached fails before any run exists
            try:
                jobs = [self._open(plan) for plan in self.plans]
                if hasattr(self.progress, "total_trainings"):  # a resume runs fewer
                    self.progress.total_trainings = sum(len(job.graph) for job in jobs)
                outcomes = self.launcher.launch(jobs)
            except KeyboardInterrupt:
                self._end_open("KILLED", "interrupted")
                raise
            except BaseException as exc:
                self._end_open("FAILED", _describe(exc))
                raise
        results = []
        for index, (plan, outcome, job) in enumerate(zip(self.plans, outcomes, jobs)):
            if outcome.error is not None:
                error = _as_lth_error(outcome.error)
                self._end_plan(plan, "FAILED", str(error))
                results.append(Result(plan.parent_id or "", error=error, units=len(job.graph)))
                continue
            try:
                finished = self._finish(plan)
            except KeyboardInterrupt:
                for later in self.plans[index + 1:]:
                    self._end_plan(later, "KILLED", "interrupted")
                raise
            except Exception as exc:  # the runner ended its runs FAILED; the others go on
                results.append(Result(plan.parent_id or "", error=_as_lth_error(exc),
                                      units=len(job.graph)))
                continue
            results.append(Result(plan.parent_id or "", finished, units=len(job.graph)))
        return results

    def _open(self, plan: Planned) -> Job:
        """Create (or reopen) the parent run and build the job of the units left to run."""
        from ..lottery.runner import LotteryRunner
        from ..spec.loading import to_yaml

        if plan.resume_id:
            children = plan.tracker.resume_experiment(plan.resume_id)
            plan.parent_id = plan.resume_id
            plan.done = frozenset(Unit(int(c.data.params["replicate"]), int(c.data.params["level"]),
                                       c.data.params["branch"]) for c in children)
        else:
            experiment = plan.experiment or _prepare(plan.spec, self.plugins)
            # the same parent run, params and tags as an in-process run creates
            plan.parent_id = LotteryRunner(experiment, plan.tracker).open_parent()
        graph = unit_graph(plan.spec).without(plan.done)
        execute = UnitJob(to_yaml(plan.spec), self.tracking_uri, plan.parent_id,
                          os.environ.get(LOAD_ENV))
        return Job(graph, execute, plan.label, self._reporter(plan))

    def _reporter(self, plan: Planned) -> Callable[[Unit, Any], None] | None:
        progress = self.progress
        if progress is None:
            return None

        def report(unit: Unit, result: Any) -> None:
            if result is None:
                progress.note(f"{plan.label}{unit.name} diverged: left to the finishing step")
            else:
                progress.end(f"{plan.label}{unit.name}", result.summary)

        return report

    def _finish(self, plan: Planned) -> ExperimentFinished:
        """Restore every branch, log summaries and analyzers, end the parent FINISHED."""
        from ..lottery.runner import LotteryRunner
        from ..tracking import open_tracker

        experiment = plan.experiment or _prepare(plan.spec, self.plugins)
        return LotteryRunner(experiment, open_tracker(self.tracking_uri),
                             self.restored_progress, resume=plan.parent_id,
                             mark_resumed=False).run()

    def _end_open(self, status: str, reason: str) -> None:
        for plan in self.plans:
            self._end_plan(plan, status, reason)

    @staticmethod
    def _end_plan(plan: Planned, status: str, reason: str) -> None:
        """End the children a unit left RUNNING KILLED, then the parent with ``status``."""
        if plan.parent_id is None:
            return
        plan.tracker.end_running_children(plan.parent_id, reason)
        plan.tracker.end_all(status, reason)


def _prepare(spec: ExperimentSpec, plugins: Plugins) -> Experiment:
    from ..lottery.experiment import prepare

    return prepare(spec, plugins)


def _describe(exc: BaseException) -> str:
    from ..lottery.guard import describe

    return describe(exc)


def _as_lth_error(exc: BaseException) -> LthError:
    if isinstance(exc, LthError):
        return exc
    error = LthError(_describe(exc))
    error.exit_code = 1
    return error


def run_distributed(spec: ExperimentSpec, plugins: Plugins, tracking_uri: str,
                    experiment: Experiment | None = None, resume: str | None = None,
                    progress: Progress | None = None,
                    launcher: Launcher | None = None) -> ExperimentFinished:
    """Run (or resume) one experiment through its spec's launcher: the Python API.

    Raises the ``LthError`` that stopped it (the parent run then ended FAILED).
    """
    from ..tracking import open_tracker

    launcher = launcher or check_launcher(spec, plugins, tracking_uri)
    tracker = open_tracker(tracking_uri)
    plan = Planned(spec, tracker, experiment, resume)
    result = Driver(plugins, launcher, tracking_uri, progress).run([plan])[0]
    if result.error is not None:
        raise result.error
    assert result.finished is not None
    return result.finished
