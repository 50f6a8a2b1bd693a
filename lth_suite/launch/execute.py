"""The one way experiments execute, and its entry points.

``run_experiment`` (a spec: new, or resuming a parent run) and ``resume_experiment`` (a
parent run, with the spec it logged) are what ``lth-suite run``, ``lth-suite resume``,
``mlflow run`` and the Python API call; ``launch.sweep.run_sweep`` hands its points to
the same ``execute``. Each entry point checks the launcher before the data loads, joins
torchrun's process group when torchrun started several processes (ranks other than 0
then follow rank 0 and return None), prepares the experiment, opens the store, and
hands the experiment to ``execute``.

``execute`` gives every experiment to its launcher: an in-process launcher (``local``)
receives one experiment at a time (``in_process``); other launchers (``ray``) receive
every experiment's units at once (``out_of_process``). What the caller shows the user
(the plan, notes, progress, the command that resumes an interrupted run) goes through
an ``Audience``; the CLI's prints, the Python API's is silent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import DataMissing, LthError
from ..lottery.checkpoints import check_same_spec, find_resumable, logged_spec
from ..lottery.child_runs import describe
from ..lottery.events import ExperimentFinished
from ..lottery.experiment import Experiment, prepare
from ..lottery.progress import Progress
from ..parallel.data_parallel import join_torchrun, leading, train_as_follower_rank
from ..parallel.units import Launcher
from ..parallel.worker_pool import WorkerPool, leave_if_spawning_worker
from ..plugins.manager import Plugins
from ..spec.loading import apply_overrides, build_spec
from ..spec.sections import ExperimentSpec
from ..tracking import Tracker, lease, open_tracker
from ..tracking.names import SPEC_HASH_TAG
from ..training.distributed import group
from .dry_run import plan_lines, plan_without_data
from .in_process import run_in_process
from .out_of_process import run_out_of_process
from .plans import ExperimentPlan, ProgressFactory, Result, check_tracking_uri, unit_graph

__all__ = ["Audience", "ExperimentPlan", "Result", "check_launcher", "check_tracking_uri",
           "execute", "resume_experiment", "run_experiment", "start_experiment", "unit_graph"]


class Audience:
    """Who hears what an experiment does; this base hears nothing (the Python API).

    The CLI subclasses it to print; every method has a silent default.
    """

    def planned(self, experiment: Experiment, launcher: Launcher, uri: str | None) -> None:
        """The experiment is prepared and about to run (or, for a dry run, would run)."""

    def note(self, text: str) -> None:
        """Something worth a line: a resume that found nothing to resume."""

    def dry_run(self, lines: list[str]) -> None:
        """A dry run's plan (``launch.dry_run``), one fact a line."""

    def progress(self, trainings: int) -> Progress | None:
        """The progress display of ``trainings`` trainings; None for the silent one."""
        return None

    def resumable(self, command: Callable[[], str | None]) -> None:
        """``command()`` is, from now on, what resumes the experiment if it is stopped."""


def check_launcher(spec: ExperimentSpec, plugins: Plugins, uri: str | None,
                   start: bool = False) -> Launcher:
    """The spec's launcher, once it can run this spec against ``uri``; else an LthError.

    Checked before any run is created: the launcher's package is installed (its factory
    checks), the store is shared when units leave this process, and the launcher takes
    the spec (``check_spec``). With ``start`` the launcher is then started
    (``start(spec)``), so that it gets ready while the data loads.
    """
    leave_if_spawning_worker()  # a script without a __main__ guard, run again in a worker
    launcher = plugins.registry.build("launcher", spec.launcher.name, spec.launcher.params)
    if not isinstance(launcher, Launcher):
        raise LthError(f"launcher: '{spec.launcher.name}' built a {type(launcher).__name__}, "
                       "not a launcher: its class must subclass lth_suite.api.Launcher")
    if not launcher.in_process and uri is not None:
        check_tracking_uri(uri, spec.launcher.name)
    launcher.check_spec(spec)
    if start:
        launcher.start(spec)
    return launcher


def execute(plans: Sequence[ExperimentPlan], plugins: Plugins, launcher: Launcher, uri: str,
            progress: ProgressFactory | None = None,
            starting: Callable[[ExperimentPlan], None] | None = None) -> list[Result]:
    """Run (or resume) every planned experiment through ``launcher``; one Result each.

    An experiment stopped by an ``LthError`` ends its runs FAILED and the others go on;
    ``KeyboardInterrupt`` ends every open run KILLED and propagates. ``starting(plan)``
    is told as each experiment starts (in process) or before the units are launched.
    """
    tell = starting or (lambda plan: None)
    with launcher:  # a cluster that cannot be reached fails before any run exists
        if launcher.in_process:
            results = []
            for plan in plans:  # one experiment after another, each told as it starts
                tell(plan)
                results.append(run_in_process(plan, plugins, launcher, progress))
            return results
        for plan in plans:
            tell(plan)
        return run_out_of_process(list(plans), plugins, launcher, uri, progress)


def start_experiment(spec: ExperimentSpec, plugins: Plugins, uri: str,
                     resume: str | bool | None = None, dry_run: bool = False,
                     audience: Audience | None = None,
                     tracker: Tracker | None = None) -> Result | None:
    """Run one validated spec from start to result: the one entry point.

    ``resume``: a parent run id to continue, True for the newest unfinished run of this
    spec (a new experiment when there is none), or None for a new experiment. Returns
    the ``Result`` (its ``error`` set when the experiment stopped; its runs then ended
    FAILED), or None for a dry run and for a torchrun rank other than 0, which trained
    what rank 0 sent. Raises ``LthError`` for what is refused before any run exists.
    """
    audience = audience or Audience()
    launcher = check_launcher(spec, plugins, uri, start=not dry_run)  # before data and runs
    join_torchrun(spec, launcher.in_process)
    if dry_run:
        _dry_run(spec, plugins, launcher, uri, audience)
        return None
    experiment = prepare(spec, plugins)
    if train_as_follower_rank(experiment):  # never touches the store
        return None
    with leading():
        if isinstance(launcher.pool, WorkerPool):  # before the store or any run exists
            launcher.pool.check_started()
        tracker = tracker or open_tracker(uri)  # a store it cannot use fails before the plan
        audience.planned(experiment, launcher, uri)
        resume_id = resume if isinstance(resume, str) else None
        if resume is True:
            resume_id = find_resumable(tracker.reader, spec, plugins.registry)
            if resume_id is None:
                audience.note("nothing to resume for this spec: starting a new experiment")
        if resume_id is None:
            _note_identical_run(tracker, experiment, audience)

        def resume_command() -> str | None:
            parent = tracker.parent_id or resume_id  # None: stopped before the parent existed
            return f"lth-suite resume {parent} --tracking-uri {tracker.uri}" if parent else None

        audience.resumable(resume_command)
        plan = ExperimentPlan(spec, tracker, experiment, resume_id)
        try:
            result = execute([plan], plugins, launcher, tracker.uri, audience.progress)[0]
        except Exception as exc:  # its runs are ended; under torchrun, a rank died
            if group() is None:
                raise
            why = (describe(exc).splitlines() or [type(exc).__name__])[0][:120]
            audience.note(f"stopped by torchrun (another rank died: {why}); resume with: "
                          f"{resume_command() or 'run it again'}")
            raise SystemExit(1) from None
        result.launcher, result.uri = launcher, tracker.uri
        return result


def _dry_run(spec: ExperimentSpec, plugins: Plugins, launcher: Launcher, uri: str,
             audience: Audience) -> None:
    """Validate and plan without training or logging; without the data, as far as the
    spec alone allows (``launch.dry_run``)."""
    try:
        experiment = prepare(spec, plugins)
    except DataMissing as error:
        audience.dry_run(plan_without_data(spec, plugins, error))
        return
    with leading():
        audience.planned(experiment, launcher, uri)
        audience.dry_run(plan_lines(experiment))


def _note_identical_run(tracker: Tracker, experiment: Experiment, audience: Audience) -> None:
    """Say so when this spec already ran to the end: running it again is allowed (another
    replicate set, a timing) but easy to do by mistake."""
    spec = experiment.spec
    name = spec.tracking.experiment or spec.experiment.name
    earlier = tracker.reader.same_spec_parents(name, experiment.hash)
    finished = [run for run in earlier if run.status == "FINISHED"]
    if finished:
        audience.note(f"an identical finished run exists: {finished[0].run_id} "
                      f"({finished[0].name}); this makes another; `lth-suite report {name}` "
                      "uses the newest")


def resume_experiment(run_id: str, plugins: Plugins, uri: str,
                      overrides: Sequence[str] = (), audience: Audience | None = None,
                      ) -> Result | None:
    """Continue an interrupted experiment in its own parent run, with the spec it logged
    (``overrides`` may change what does not alter its hash: threads, device, launcher);
    as ``start_experiment`` otherwise."""
    tracker = open_tracker(uri)
    parent = tracker.reader.require(run_id)
    if parent.parent_id is not None or SPEC_HASH_TAG not in parent.tags:
        raise LthError(f"run {run_id} is not the parent run of an lth-suite experiment")
    if parent.status == "FINISHED":
        raise LthError(f"run {run_id} already finished: nothing to resume")
    lease.check_free(tracker.client, run_id)  # the tracker takes the lease once data is loaded
    spec = build_spec(apply_overrides(logged_spec(tracker.reader, run_id), list(overrides)),
                      plugins.registry, f"run {run_id} spec.yaml")
    check_same_spec(tracker.reader, run_id, spec, plugins.registry)
    return start_experiment(spec, plugins, tracker.uri, resume=run_id, audience=audience,
                            tracker=tracker)


def run_experiment(spec: ExperimentSpec, plugins: Plugins, tracking_uri: str,
                   progress: Progress | None = None, resume: str | None = None,
                   ) -> ExperimentFinished:
    """Run (or resume) one validated spec through its launcher: the Python API.

    Raises the ``LthError`` that stopped it (its runs then ended FAILED). Under torchrun,
    call it in every process; it returns rank 0's result only there.
    """

    class Shown(Audience):
        def progress(self, trainings: int) -> Progress | None:
            return progress

    result = start_experiment(spec, plugins, tracking_uri, resume=resume, audience=Shown())
    if result is None:
        raise LthError("this process is a torchrun rank other than 0: rank 0 has the result")
    if result.error is not None:
        raise result.error
    assert result.finished is not None
    return result.finished
