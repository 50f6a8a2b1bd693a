"""Commands that run experiments: run, resume, and the mlflow run entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import LthError
from .common import (
    OverridesOpt,
    Resumable,
    SetOpt,
    SpecArg,
    UriOpt,
    _auto_report,
    _fail,
    _load,
    app,
    err,
    out,
    stopping_cleanly,
)


@app.command()
def run(spec: SpecArg, set_: SetOpt = None, overrides: OverridesOpt = None,
        tracking_uri: UriOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="validate, load data and "
                                              "build the model; train and log nothing")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="continue the newest unfinished "
                                             "run of this spec, skipping what is done")] = False,
        ) -> None:
    """Run an experiment: train, prune, rewind, retrain, level after level."""
    from ..launch.execute import check_launcher
    from ..lottery.checkpoints import find_resumable
    from ..lottery.data_parallel import follows, join_torchrun, leading
    from ..lottery.experiment import prepare
    from ..tracking import open_tracker, resolve_tracking_uri

    extra = [part.strip() for part in (overrides or "").split(";") if part.strip()]
    with stopping_cleanly() as stop:  # Ctrl-C while loading data is clean too
        try:
            plugins, experiment_spec = _load(spec, [*(set_ or []), *extra])
            uri = resolve_tracking_uri(tracking_uri, experiment_spec.tracking.uri)
            launcher = check_launcher(experiment_spec, plugins, uri,  # before data and runs
                                      start=not dry_run)
            join_torchrun(experiment_spec, launcher.in_process)
            experiment = prepare(experiment_spec, plugins)
        except LthError as error:
            _fail(error)
        if follows(experiment):  # a torchrun rank other than 0: trains, never touches the store
            return
        with leading():
            try:
                if dry_run:
                    _print_plan(experiment)
                    return
                tracker = open_tracker(uri)
                resume_id = (find_resumable(tracker.reader, experiment_spec, plugins.registry)
                             if resume else None)
                if resume and resume_id is None:
                    err.print("nothing to resume for this spec: starting a new experiment")
            except LthError as error:
                _fail(error)
            _execute(experiment, launcher, tracker, resume_id, tracking_uri, stop)


@app.command()
def resume(run_id: Annotated[str, typer.Argument(help="parent run of the experiment")],
           set_: SetOpt = None, tracking_uri: UriOpt = None) -> None:
    """Continue an interrupted experiment in its own parent run, skipping what is done."""
    again = f"lth-suite resume {run_id}" + (f" --tracking-uri {tracking_uri}" if tracking_uri
                                            else "")
    with stopping_cleanly(lambda: again) as stop:
        _resume(run_id, set_, tracking_uri, stop)


def _resume(run_id: str, set_: list[str] | None, tracking_uri: str | None,
            stop: Resumable) -> None:
    """``resume`` once Ctrl-C is handled: the logged spec, checked, then executed."""
    from ..launch.execute import check_launcher
    from ..lottery.checkpoints import check_same_spec, logged_spec
    from ..lottery.data_parallel import follows, join_torchrun, leading
    from ..lottery.experiment import prepare
    from ..plugins.manager import load_plugins
    from ..spec.loading import apply_overrides, build_spec
    from ..tracking import open_tracker, resolve_tracking_uri
    from ..tracking.names import SPEC_HASH_TAG

    try:
        tracker = open_tracker(resolve_tracking_uri(tracking_uri, None))
        parent = tracker.reader.require(run_id)
        if parent.parent_id is not None or SPEC_HASH_TAG not in parent.tags:
            raise LthError(f"run {run_id} is not the parent run of an lth-suite experiment")
        if parent.status == "FINISHED":
            raise LthError(f"run {run_id} already finished: nothing to resume")
        plugins = load_plugins()
        experiment_spec = build_spec(apply_overrides(logged_spec(tracker.reader, run_id),
                                                     set_ or []),
                                     plugins.registry, f"run {run_id} spec.yaml")
        check_same_spec(tracker.reader, run_id, experiment_spec, plugins.registry)
        launcher = check_launcher(experiment_spec, plugins, tracker.uri, start=True)
        join_torchrun(experiment_spec, launcher.in_process)
        experiment = prepare(experiment_spec, plugins)
    except LthError as error:
        _fail(error)
    if follows(experiment):  # a torchrun rank other than 0: trains, writes nothing
        return
    with leading():
        _execute(experiment, launcher, tracker, run_id, tracking_uri, stop)


def _execute(experiment, launcher, tracker, resume_id: str | None,
             tracking_uri: str | None, stop: Resumable) -> None:
    """Run or resume a prepared experiment through its launcher and print the outcome."""
    from ..launch.execute import ExperimentPlan, execute
    from ..lottery.progress import ConsoleProgress

    spec = experiment.spec
    _print_plan(experiment)
    if not launcher.in_process:
        err.print(f"launcher {spec.launcher.name}: units run as they become ready; "
                  f"tracking at {tracker.uri}", highlight=False, markup=False)
    plan = ExperimentPlan(spec, tracker, experiment, resume_id)
    def resume_command() -> str | None:
        parent = tracker.parent_id or resume_id  # None: interrupted before the parent existed
        return f"lth-suite resume {parent} --tracking-uri {tracker.uri}" if parent else None

    stop.command = resume_command
    try:
        result = execute([plan], experiment.plugins, launcher, tracker.uri, ConsoleProgress)[0]
    except LthError as error:  # the launcher refused before any run (a cluster, its size)
        _fail(error)
    if result.error is not None:
        if not launcher.in_process:
            err.print(f"experiment stopped; parent run {result.parent_id} ended FAILED; resume "
                      f"with: lth-suite resume {result.parent_id} --tracking-uri {tracker.uri}",
                      highlight=False, markup=False)
        _fail(result.error)
    finished = result.finished
    _print_summary(finished.summary, result.seconds)
    if launcher.in_process and getattr(launcher, "pool", None) is None:
        _print_time_split(finished, result.seconds)  # trainings side by side: no split
    out.print(f"parent run {finished.parent_run_id} in {tracker.uri}", highlight=False)
    if spec.report.enabled:
        _auto_report(tracker.uri, finished.parent_run_id, spec.report.levels)
    if tracker.uri.startswith(("http://", "https://")):  # the server shows its own UI
        out.print(f"open the MLflow UI at {tracker.uri}", highlight=False, markup=False)
        return
    shown_uri = tracking_uri or not launcher.in_process
    out.print("open the MLflow UI with: [bold]lth-suite ui[/]"
              + (f" --tracking-uri {tracker.uri}" if shown_uri else ""), highlight=False)


@app.command(hidden=True)
def mlproject(
    model: Annotated[str, typer.Option(help="preset: lenet, conv2, conv4, conv6, vgg19, resnet20, "
                                           "resnet50")] = "lenet",
    spec: Annotated[str, typer.Option(help="a spec file instead of the preset")] = "",
    dataset: str = "", data_root: str = "", levels: str = "", iterations: str = "",
    replicates: str = "", device: str = "",
    overrides: Annotated[str, typer.Option(help="KEY=VALUE pairs separated by ';'")] = "",
) -> None:
    """The ``mlflow run`` entry point: a preset (or spec) plus the project's parameters."""
    from ..spec.presets import preset_path, project_overrides

    try:
        path = Path(spec) if spec else preset_path(model)
    except LthError as error:
        _fail(error)
    sets = project_overrides(dataset=dataset, data_root=data_root, levels=levels,
                             iterations=iterations, replicates=replicates, device=device,
                             overrides=overrides)
    run(path, set_=sets, overrides=None, tracking_uri=None, dry_run=False, resume=False)


def _print_plan(experiment) -> None:
    spec, sizes = experiment.spec, experiment.data.sizes()
    params = sum(layer.numel for layer in experiment.layers)
    err.print(
        f"{spec.experiment.name} [{experiment.hash}]: {spec.model.name} on "
        f"{experiment.data.info.name} (train {sizes['train']}, validation {sizes['validation']}, "
        f"test {sizes['test']}), {params:,} prunable weights; {spec.pruning.levels} levels x "
        f"{spec.experiment.replicates} replicate(s), branches {', '.join(experiment.branches())}: "
        f"{experiment.trainings()} trainings of {experiment.config.total} iterations on "
        f"{experiment.device}", highlight=False, markup=False)


def _print_time_split(finished, seconds: float) -> None:
    """Where the run's time went: training steps, evaluations, and the rest (MLflow logging,
    live evaluations' writes included, checkpoints, pruning, analyzers), from the timings
    each training reports."""
    trained = [b.result.timings for level in finished.levels for b in level.branches
               if not b.restored]
    if not trained or not all(trained):  # population training does not split its time
        return
    steps = sum(t["steps"] for t in trained)
    evaluation = sum(t["evaluation"] for t in trained)
    rest = max(0.0, seconds - steps - evaluation)
    out.print(f"time: training steps {steps:.1f} s, evaluation {evaluation:.1f} s, logging and "
              f"checkpoints {rest:.1f} s (+{100 * (evaluation + rest) / max(steps, 1e-9):.0f}%)",
              highlight=False, markup=False)


def _print_summary(rows: list[dict[str, float]], seconds: float) -> None:
    branches = sorted({key.split("/")[0] for row in rows for key in row if "/" in key},
                      key=lambda b: (b != "ticket", b))
    from ..report.numbers import accuracy_text, weights_text

    table = Table(title=f"test accuracy at the early-stop iteration, % ({seconds:.1f} s)")
    table.add_column("level", justify="right")
    table.add_column("weights left (%)", justify="right")
    for branch in branches:
        table.add_column(branch, justify="right")
    for row in rows:
        cells = [accuracy_text(100 * row[f"{b}/early_stop_test_accuracy"])
                 if f"{b}/early_stop_test_accuracy" in row else "–" for b in branches]
        table.add_row(str(int(row["level"])), weights_text(100 * row["density"]), *cells)
    out.print(table)
