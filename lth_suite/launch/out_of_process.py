"""Executing experiments whose units run in other processes (a cluster's workers).

Every experiment's parent run is opened here and its units go to the launcher at once;
the units train in worker processes that share the tracking store. Each experiment is
then finished here, in the driver, from its checkpoints: the per-level summaries,
analyzers and hooks, and the parent run ended FINISHED.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import LthError
from ..lottery.checkpoints import key_of
from ..lottery.child_runs import describe, ending
from ..lottery.experiment import prepare
from ..lottery.progress import Progress, SilentProgress
from ..lottery.recorder import open_parent_run
from ..lottery.runner import finish_from_store
from ..parallel.unit_worker import UnitJob
from ..parallel.units import Job, Launcher, Outcome, Unit
from ..plugins.manager import LOAD_ENV, Plugins
from ..spec.loading import to_yaml
from ..tracking import open_tracker
from .plans import ExperimentPlan, ProgressFactory, Result, unit_graph


def run_out_of_process(plans: list[ExperimentPlan], plugins: Plugins, launcher: Launcher,
                    uri: str, progress: ProgressFactory | None) -> list[Result]:
    """Open every experiment's parent run, launch all their units at once, then finish
    each experiment whose units all ran (and end the others' runs FAILED)."""
    # Imported here, in the main thread: torch's import is not thread-safe, and the
    # launcher's threads (Ray's among them) would otherwise race to import it first.
    import torch  # noqa: F401

    finishing = SilentProgress()  # the finishing steps' progress: keeps the wall time
    shown: Progress | None = None
    try:
        jobs = [_open(plan, plugins, uri) for plan in plans]
        if progress is not None:  # counted once opened: a resume runs fewer units
            shown = progress(sum(len(job.graph) for job in jobs))
        if shown is not None:
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
            finished = finish_from_store(experiment, open_tracker(uri), plan.parent_id or "",
                                         finishing)
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
        plan.parent_id = open_parent_run(experiment, plan.tracker)
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
