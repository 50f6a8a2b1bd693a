"""Writing an experiment's results: its parent run, each training's child run and
checkpoint, each level's summary and analyses, and the experiment's end.

Every finished training is a checkpoint (mask, weights, history): a resumed experiment
reads it back through ``restore`` instead of training it again.
"""

from __future__ import annotations

import json
from statistics import mean

import torch

from ..spec.loading import to_yaml
from ..tracking import Tracker
from ..tracking.names import (
    CONTROLS_TAG,
    DENSITY,
    DENSITY_PARAM,
    HOOKS_DONE_TAG,
    LEVEL,
    PLUGINS_TAG,
    REWIND_STATE_ARTIFACT,
    SPEC_HASH_TAG,
    STATE_ARTIFACT,
    SUMMARY_KEYS,
    SYNTHETIC_TAG,
    TASK_SUMMARY_KEYS,
    TICKET,
    WALL_TIME,
    analysis_artifact,
    branch_metric,
    captured_state_artifact,
    child_run_name,
    level_label,
    model_name,
    parent_run_name,
)
from ..training.result import TrainResult
from ..training.streaming import example_inputs
from .analyzers import as_analysis
from .checkpoints import Checkpoints, Finished
from .child_runs import Guard, ending
from .events import BranchResult, ExperimentFinished, LevelFinished
from .experiment import Experiment
from .planner import Planned
from .progress import Progress


class Recorder:
    """Logs one experiment through a ``Tracker``: the only writer the lottery uses."""

    def __init__(self, experiment: Experiment, tracker: Tracker, guard: Guard,
                 progress: Progress, model: torch.nn.Module):
        self.experiment, self.tracker, self.guard = experiment, tracker, guard
        self.progress, self.model = progress, model
        self.hooks_done = -1  # the last level whose lifecycle hooks all returned
        self.logged_rows: dict[str, int] = {}  # evaluation rows already logged, per child run

    # ----------------------------------------------------------------------------------
    # The parent run
    # ----------------------------------------------------------------------------------
    def open_parent(self, resume: str | None, mark_resumed: bool = True) -> Checkpoints:
        """Create the parent run, or reopen it when resuming; what it already holds."""
        if resume:
            self.tracker.resume_experiment(resume, mark=mark_resumed)
            parent = self.tracker.reader.require(resume)
            self.hooks_done = int(parent.tags.get(HOOKS_DONE_TAG, "-1"))
            return Checkpoints(self.tracker.reader, resume)
        open_parent_run(self.experiment, self.tracker)
        return Checkpoints()

    @property
    def parent(self) -> str:
        """The parent run's id."""
        assert self.tracker.parent_id is not None, "open_parent first"
        return self.tracker.parent_id

    # ----------------------------------------------------------------------------------
    # One training
    # ----------------------------------------------------------------------------------
    def start(self, item: Planned) -> None:
        """Before a training: its densities, so that a run that fails still says them."""
        self.tracker.log_params(item.run, {
            DENSITY_PARAM: round(item.mask.density(), 6),
            **{f"{DENSITY_PARAM}.{k}": round(v, 6) for k, v in item.mask.layer_density().items()}})

    def evaluated(self, item: Planned, row: dict[str, float]) -> None:
        """One evaluation of a training still running, logged as it is computed."""
        self.tracker.log_evaluations(item.run, [row])
        self.logged_rows[item.run] = self.logged_rows.get(item.run, 0) + 1

    def finish(self, item: Planned, result: TrainResult) -> BranchResult:
        """Log a finished training into its child run (history, summary, checkpoint, model)
        and end the run FINISHED."""
        tracking, run = self.experiment.spec.tracking, item.run
        branch = BranchResult(item.replicate, item.level, item.branch, item.mask, result, run)
        self.tracker.log_history(run, result.history[self.logged_rows.pop(run, 0):])
        self.tracker.log_metrics(run, branch.summary)
        # A ticket's weights are the checkpoint later levels resume from: always kept.
        keep_state = item.branch == TICKET or tracking.log_state_dicts
        states = {STATE_ARTIFACT: result.state} if keep_state else {}
        if item.capture is not None:
            states[REWIND_STATE_ARTIFACT] = result.captured[item.capture]
        for iteration in item.control_captures:
            states[captured_state_artifact(iteration)] = result.captured[iteration]
        self.tracker.log_training_artifacts(run, item.mask, states)
        last_level = item.level == self.experiment.spec.pruning.levels
        if item.branch == TICKET and (tracking.log_models == "all"
                                      or (tracking.log_models == "final" and last_level)):
            self.model.load_state_dict(result.state)
            self.tracker.log_model(run, self.model, model_name(item.replicate, item.level),
                                   example_inputs(self.experiment.data), tracking.model_format)
        self.progress.end(item.name, branch.summary)
        self.guard.close(run)
        return branch

    def abandon(self, items: list[Planned], error: BaseException) -> None:
        """End the runs of trainings that did not finish: FAILED, or KILLED when interrupted."""
        for item in items:
            self.guard.close(item.run, error)

    def restore(self, done: Finished, replicate: int, level: int, branch: str,
                capture: int | None) -> BranchResult:
        """A training finished before a resume, read back from its child run. A ticket's
        weights (and the dense run's rewind-point weights) come back; a control's are not
        needed by any later level."""
        weights = branch == TICKET
        result = TrainResult(state=done.state() if weights else {}, history=done.history())
        if capture is not None:
            result.captured[capture] = done.rewind_state()
        if branch == TICKET and level == 0:  # what the controls need of the dense training
            for iteration in self.experiment.dense_captures:
                result.captured[iteration] = done.state(captured_state_artifact(iteration))
        restored = BranchResult(replicate, level, branch, done.mask().to(self.experiment.device), result,
                                done.run_id, restored=True)
        self.progress.end(f"{child_run_name(replicate, level, branch)} (restored)",
                          restored.summary)
        return restored

    # ----------------------------------------------------------------------------------
    # Levels and the experiment
    # ----------------------------------------------------------------------------------
    def level_finished(self, event: LevelFinished, resumed: bool) -> None:
        """The level's summary and analyses on the parent run, then the lifecycle hooks.

        After a resume, what the store already holds is not logged twice, and the hooks
        run for every level whose hooks had not all returned before.
        """
        level = event.level
        if not resumed or not self.tracker.reader.has_metric_at(self.parent, LEVEL, level):
            metrics = level_summary(event)
            for name, analyzer in self.experiment.analyzers:
                output = self.guard.call("analyzer", name, analyzer.after_level, event)
                metrics.update(self._log_analysis(name, output, level_label(level)))
            self.tracker.log_metrics(self.parent, metrics, step=level)
        else:  # logged before the interruption: analyzers only catch up on their state
            for name, analyzer in self.experiment.analyzers:
                if hasattr(analyzer, "seen_level"):
                    self.guard.call("analyzer", name, analyzer.seen_level, event)
        if level > self.hooks_done:
            self.guard.hook("lth_level_finished", event)
            self.hooks_done = level
            self.tracker.set_tag(self.parent, HOOKS_DONE_TAG, str(level))
        self.progress.level_done(level, level_summary(event))

    def experiment_finished(self, finished: ExperimentFinished) -> None:
        """The experiment's analyses, its hook, its wall time; the parent run ends FINISHED."""
        for name, analyzer in self.experiment.analyzers:
            output = self.guard.call("analyzer", name, analyzer.after_experiment, finished)
            self.tracker.log_metrics(self.parent, self._log_analysis(name, output, "experiment"))
        self.guard.hook("lth_experiment_finished", finished)
        self.tracker.log_metrics(self.parent, {WALL_TIME: self.progress.elapsed()})
        self.tracker.end_run(self.parent)

    def end_all(self, error: BaseException) -> list[str]:
        """End every run still open: KILLED when interrupted, else FAILED naming ``error``;
        the runs a failing store would not let end."""
        return self.tracker.end_all(*ending(error))

    def _log_analysis(self, name: str, output: object, label: str) -> dict[str, float]:
        """Log an analyzer's table as JSON; its metrics, prefixed with its name."""
        analysis = as_analysis(output)
        if analysis.table:
            self.tracker.log_json(self.parent, {"rows": analysis.table},
                                  analysis_artifact(name, label))
        for tag, value in analysis.tags.items():
            self.tracker.set_tag(self.parent, f"{name}.{tag}", str(value))
        return {f"{name}/{k}": v for k, v in analysis.metrics.items()}


def open_parent_run(experiment: Experiment, tracker: Tracker) -> str:
    """Create an experiment's parent run (its params, tags and spec); its id. The same
    run whichever path then trains the experiment's units."""
    spec = experiment.spec
    name = spec.tracking.experiment or spec.experiment.name
    # The same spec run again gets a name of its own: NAME-HASH8, then NAME-HASH8-2, ...
    earlier = len(tracker.reader.same_spec_parents(name, experiment.hash))
    run_name = parent_run_name(spec.experiment.name, experiment.hash)
    return tracker.start_experiment(
        experiment=name,
        run_name=f"{run_name}-{earlier + 1}" if earlier else run_name,
        params=spec.model_dump(mode="json"),
        tags={SPEC_HASH_TAG: experiment.hash,
              PLUGINS_TAG: json.dumps(experiment.plugins.versions()),
              CONTROLS_TAG: json.dumps(control_legends(experiment)),
              SYNTHETIC_TAG: str(experiment.data.info.synthetic).lower()},
        spec_yaml=to_yaml(spec),
    )


def control_legends(experiment: Experiment) -> list[list[str]]:
    """Each control's name, its plugin's description and what it varies (``mask``,
    ``weights`` or ``""``): how reports label and group the controls."""
    registry = experiment.plugins.registry
    return [[name, registry.get("control", name).description,
             str(getattr(experiment.controls_built.get(name), "varies", ""))]
            for name in experiment.controls()]


def level_summary(event: LevelFinished) -> dict[str, float]:
    """Density and each branch's accuracy at one level: mean, and min/max over replicates."""
    tickets = event.of(TICKET)
    row: dict[str, float] = {LEVEL: float(event.level),
                             DENSITY: mean(t.mask.density() for t in tickets)}
    for branch in sorted({b.branch for b in event.branches}):
        results = event.of(branch)
        present = [k for k in TASK_SUMMARY_KEYS if all(k in r.summary for r in results)]
        for key in (*SUMMARY_KEYS, *present):
            values = [r.summary[key] for r in results]
            row[branch_metric(branch, key)] = mean(values)
            if len(values) > 1:
                low, high = branch_metric(branch, f"{key}_min"), branch_metric(branch, f"{key}_max")
                row[low], row[high] = min(values), max(values)
    return row
