"""Commands that run experiments: run, resume, and the mlflow run entry point."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import DataError, LthError
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
    print_report_folder,
    print_statistics,
    stopping_cleanly,
)

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's Default experiment, where mlflow run goes unless named
ONE_REPLICATE = ("one replicate: no interval or test; experiment.replicates: 3 or more gives "
                 "intervals and the ticket's paired tests against the controls")


@app.command()
def run(spec: SpecArg, set_: SetOpt = None, overrides: OverridesOpt = None,
        tracking_uri: UriOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and print the plan "
                                              "(without the data when it is not available); "
                                              "train and log nothing")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="continue the newest unfinished "
                                             "run of this spec, skipping what is done")] = False,
        ) -> None:
    """Run an experiment: train, prune, rewind, retrain, level after level."""
    extra = [part.strip() for part in (overrides or "").split(";") if part.strip()]
    _run(spec, [*(set_ or []), *extra], tracking_uri, dry_run, resume, _fail)


def _run(spec: Path, sets: list[str], tracking_uri: str | None, dry_run: bool, resume: bool,
         refused: Callable[[LthError], None]) -> None:
    """``run``'s work; ``refused`` hears an error that stops the experiment before it
    starts (``mlflow run`` words it in the project's parameters)."""
    from ..launch.execute import start_experiment
    from ..tracking import resolve_tracking_uri

    with stopping_cleanly() as stop:  # Ctrl-C while loading data is clean too
        try:
            plugins, experiment_spec = _load(spec, sets)
            uri = resolve_tracking_uri(tracking_uri, experiment_spec.tracking.uri)
            result = start_experiment(experiment_spec, plugins, uri, resume=resume or None,
                                      dry_run=dry_run, audience=ConsoleAudience(stop))
        except LthError as error:
            refused(error)
        _print_outcome(result, tracking_uri)


@app.command()
def resume(run_id: Annotated[str, typer.Argument(help="parent run of the experiment")],
           set_: SetOpt = None, tracking_uri: UriOpt = None) -> None:
    """Continue an interrupted experiment in its own parent run, skipping what is done."""
    from ..launch.execute import resume_experiment
    from ..plugins.manager import load_plugins
    from ..tracking import resolve_tracking_uri

    again = f"lth-suite resume {run_id}" + (f" --tracking-uri {tracking_uri}" if tracking_uri
                                            else "")
    with stopping_cleanly(lambda: again) as stop:
        try:
            result = resume_experiment(run_id, load_plugins(),
                                       resolve_tracking_uri(tracking_uri, None), set_ or [],
                                       ConsoleAudience(stop))
        except LthError as error:
            _fail(error)
        _print_outcome(result, tracking_uri)


class ConsoleAudience:
    """What the terminal shows of an experiment: its plan, notes, a progress bar, and
    the command that resumes it when Ctrl-C stops it."""

    def __init__(self, stop: Resumable):
        self.stop = stop

    def planned(self, experiment, launcher, uri: str | None) -> None:
        """The plan line, and where units run when they leave this process."""
        _print_plan(experiment)
        for line in experiment.notes:
            err.print(line, highlight=False, markup=False)
        if launcher.note:
            err.print(launcher.note, highlight=False, markup=False)
        if not launcher.in_process:
            err.print(f"launcher {experiment.spec.launcher.name}: units run as they become "
                      f"ready; tracking at {uri}", highlight=False, markup=False)

    def note(self, text: str) -> None:
        """A line on standard error."""
        err.print(text, highlight=False, markup=False)

    def dry_run(self, lines: list[str]) -> None:
        """The dry run's plan, a line each, on standard error."""
        for line in lines:
            err.print(line, highlight=False, markup=False)

    def progress(self, trainings: int):
        """The console's progress bar (or log lines when not a terminal)."""
        from ..lottery.progress import ConsoleProgress

        return ConsoleProgress(trainings)

    def resumable(self, command) -> None:
        """Ctrl-C from now on names ``command()``."""
        self.stop.command = command


def _print_outcome(result, tracking_uri: str | None) -> None:
    """What ``run`` and ``resume`` print once the experiment ended (nothing for a dry run
    or a torchrun rank other than 0); exits non-zero when it stopped."""
    from ..parallel.units import UnitFailed

    if result is None:
        return
    launcher, uri = result.launcher, result.uri
    if result.error is not None:
        if not launcher.in_process:
            err.print(f"experiment stopped; parent run {result.parent_id} ended FAILED; resume "
                      f"with: lth-suite resume {result.parent_id} --tracking-uri {uri}",
                      highlight=False, markup=False)
        elif result.parent_id and isinstance(result.error, (UnitFailed, DataError)):
            # a worker died, or a file went bad mid-training: resuming retries what is left
            _fail(LthError(f"{result.error}; parent run {result.parent_id} ended FAILED; "
                           f"resume with: lth-suite resume {result.parent_id} "
                           f"--tracking-uri {uri}"), result.error.exit_code)
        _fail(result.error)
    finished = result.finished
    spec = finished.spec
    report = _auto_report(uri, finished.parent_run_id, spec.report.levels) \
        if spec.report.enabled else None
    if report is not None and spec.experiment.replicates > 1:
        print_statistics(report)  # the one table: with intervals and the paired tests
    else:
        _print_summary(finished.summary, result.seconds, spec.experiment.replicates,
                       spec.controls.enabled())
    _print_time_split(finished, result.seconds, launcher.pool)
    out.print(f"parent run {finished.parent_run_id} in {uri}", highlight=False)
    if report is not None:
        print_report_folder(report)
    link = _parent_link(uri, finished.parent_run_id, report)
    if uri.startswith(("http://", "https://")):  # the server shows its own UI
        out.print(f"open it in the MLflow UI: {link}", highlight=False, markup=False)
        return
    shown_uri = tracking_uri or not launcher.in_process
    out.print(f"open it in the MLflow UI: {link} (start the UI with: lth-suite ui"
              + (f" --tracking-uri {uri})" if shown_uri else ")"), highlight=False,
              markup=False)


def _parent_link(uri: str, run_id: str, report) -> str:
    """The parent run's page in the MLflow UI's model-training view."""
    from ..tracking import open_reader, run_url

    parent = report.data.parent if report is not None and report.data is not None else \
        open_reader(uri).run(run_id)
    return run_url(uri, parent.experiment_id, run_id)


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
    if os.environ.get("MLFLOW_EXPERIMENT_ID") == DEFAULT_EXPERIMENT_ID:
        err.print("note: mlflow run put its run, this experiment's parent run, in MLflow's "
                  "Default experiment; `mlflow run . --experiment-name NAME ...` (the preset's "
                  "experiment name, e.g. lenet300-mnist) keeps it where `lth-suite report "
                  "NAME` finds it", highlight=False, markup=False)
    _run(path, sets, None, False, False, _project_refused)


def _project_refused(error: LthError) -> None:
    """An experiment ``mlflow run`` started that stopped before it began: the error in the
    project's parameters, also written on MLflow's run (which MLflow then ends FAILED)."""
    from ..errors import DataMissing
    from ..tracking.experiments import explain_launched_run
    from ..tracking.uris import resolve_tracking_uri

    if isinstance(error, DataMissing):
        error = DataMissing(f"{error}; with mlflow run: -P data_root=FOLDER names the folder "
                            "that holds it, -P dataset=fake tries the preset on synthetic data")
    launched = os.environ.get("MLFLOW_RUN_ID")
    if launched:
        explain_launched_run(resolve_tracking_uri(None, None), launched, "; ".join(error.lines()))
    _fail(error)


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


def _print_time_split(finished, seconds: float, pool=None) -> None:
    """Where the run's time went: training steps, evaluations, and the rest (MLflow logging,
    live evaluations' writes included, checkpoints, pruning, analyzers), from the timings
    each training reports. Trainings side by side in ``pool``'s workers overlap: their
    times are summed and set beside the run's wall time instead."""
    trained = [b.result.timings for level in finished.levels for b in level.branches
               if not b.restored]
    if not trained or not all(trained):  # population training does not split its time
        return
    steps = sum(t["steps"] for t in trained)
    evaluation = sum(t["evaluation"] for t in trained)
    if pool is not None and pool.size > 1:
        out.print(f"time: {seconds:.1f} s in all; {len(trained)} trainings on {pool.size} "
                  f"workers took training steps {steps:.1f} s and evaluation "
                  f"{evaluation:.1f} s, summed over the workers", highlight=False, markup=False)
        return
    rest = max(0.0, seconds - steps - evaluation)
    out.print(f"time: training steps {steps:.1f} s, evaluation {evaluation:.1f} s, logging and "
              f"checkpoints {rest:.1f} s (+{100 * (evaluation + rest) / max(steps, 1e-9):.0f}%)",
              highlight=False, markup=False)


def _print_summary(rows: list[dict[str, float]], seconds: float, replicates: int,
                   controls: list[str]) -> None:
    """The run's results without intervals: one replicate, or no report; the branches in
    the report's order (the ticket, then the controls as the spec enables them)."""
    from ..report.numbers import accuracy_text, weights_text
    from ..tracking.names import branch_order

    branches = sorted({key.split("/")[0] for row in rows for key in row if "/" in key},
                      key=lambda branch: branch_order(branch, controls))

    # A language model's rows carry its perplexity: the table quotes it, as its task does.
    perplexity = bool(rows) and all(f"{b}/early_stop_test_perplexity" in row
                                    for row in rows for b in branches
                                    if f"{b}/early_stop_test_accuracy" in row)
    metric, key = (("test perplexity", "early_stop_test_perplexity") if perplexity
                   else ("test accuracy", "early_stop_test_accuracy"))
    unit = "" if perplexity else ", %"
    title = (f"{metric} at the early-stop iteration{unit} ({seconds:.1f} s)" if replicates == 1
             else f"{metric} at the early-stop iteration{unit}, mean of {replicates} "
                  f"replicates ({seconds:.1f} s)")
    table = Table(title=title, caption_justify="left", caption=ONE_REPLICATE if replicates == 1
                  else None)
    table.add_column("level", justify="right")
    table.add_column("weights left (%)", justify="right")
    for branch in branches:
        table.add_column(branch, justify="right")
    for row in rows:
        cells = [("–" if f"{b}/{key}" not in row else f"{row[f'{b}/{key}']:.2f}" if perplexity
                  else accuracy_text(100 * row[f"{b}/{key}"])) for b in branches]
        table.add_row(str(int(row["level"])), weights_text(100 * row["density"]), *cells)
    out.print(table)
