"""The ``lth-suite`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import LthError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Lottery Ticket Hypothesis experiments, tracked in MLflow.")
# soft_wrap: piped output keeps one line per message instead of wrapping at 80 columns
WIDE = 160  # tables printed to a pipe are not cut to the 80-column default
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="experiment spec (YAML)", show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", "-s", help="override a spec field: KEY=VALUE, VALUE parsed as YAML (repeatable)")]
OverridesOpt = Annotated[Optional[str], typer.Option(
    "--overrides", help="several overrides in one string, separated by ';' (for mlflow run)")]
UriOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: sqlite mlflow.db in this folder)")]


def _fail(error: LthError) -> None:
    for line in error.lines():
        err.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


def _load(spec_path: Path, overrides: list[str] | None):
    from .plugins import load_plugins
    from .spec_loading import load_spec

    plugins = load_plugins()
    return plugins, load_spec(spec_path, plugins.registry, overrides or [])


@app.command()
def run(spec: SpecArg, set_: SetOpt = None, overrides: OverridesOpt = None,
        tracking_uri: UriOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="validate, load data and "
                                              "build the model; train and log nothing")] = False,
        resume: Annotated[bool, typer.Option("--resume", help="continue the newest unfinished "
                                             "run of this spec, skipping what is done")] = False,
        ) -> None:
    """Run an experiment: train, prune, rewind, retrain, level after level."""
    from .experiment import prepare

    extra = [part.strip() for part in (overrides or "").split(";") if part.strip()]
    try:
        plugins, experiment_spec = _load(spec, [*(set_ or []), *extra])
        if experiment_spec.launcher.name != "local":  # before data load and any run
            from .distributed import check_launcher
            from .tracking import resolve_tracking_uri

            check_launcher(experiment_spec, plugins,
                           resolve_tracking_uri(tracking_uri, experiment_spec.tracking.uri))
        experiment = prepare(experiment_spec, plugins)
        if dry_run:
            _print_plan(experiment)
            return
        from .resume import find_resumable
        from .tracking import open_tracker, resolve_tracking_uri

        tracker = open_tracker(resolve_tracking_uri(tracking_uri, experiment_spec.tracking.uri))
        resume_id = find_resumable(tracker, experiment_spec, plugins.registry) if resume else None
        if resume and resume_id is None:
            err.print("nothing to resume for this spec: starting a new experiment")
    except LthError as error:
        _fail(error)
    _execute(experiment, tracker, resume_id, tracking_uri)


@app.command()
def resume(run_id: Annotated[str, typer.Argument(help="parent run of the experiment")],
           set_: SetOpt = None, tracking_uri: UriOpt = None) -> None:
    """Continue an interrupted experiment in its own parent run, skipping what is done."""
    import yaml

    from .experiment import prepare
    from .plugins import load_plugins
    from .resume import check_same_spec
    from .spec_loading import apply_overrides, build_spec
    from .tracking import open_tracker, resolve_tracking_uri

    try:
        tracker = open_tracker(resolve_tracking_uri(tracking_uri, None))
        parent = tracker.get_run(run_id)
        if "mlflow.parentRunId" in parent.data.tags or "lth_suite.spec_hash" not in parent.data.tags:
            raise LthError(f"run {run_id} is not the parent run of an lth-suite experiment")
        if parent.info.status == "FINISHED":
            raise LthError(f"run {run_id} already finished: nothing to resume")
        plugins = load_plugins()
        logged = yaml.safe_load(tracker.read_artifact(run_id, "spec.yaml").decode())
        experiment_spec = build_spec(apply_overrides(logged, set_ or []), plugins.registry,
                                     f"run {run_id} spec.yaml")
        check_same_spec(tracker, run_id, experiment_spec, plugins.registry)
        if experiment_spec.launcher.name != "local":
            from .distributed import check_launcher

            check_launcher(experiment_spec, plugins, tracker.uri)
        experiment = prepare(experiment_spec, plugins)
    except LthError as error:
        _fail(error)
    _execute(experiment, tracker, run_id, tracking_uri)


def _execute(experiment, tracker, resume_id: str | None, tracking_uri: str | None) -> None:
    """Run or resume a prepared experiment; Ctrl-C and SIGTERM end its runs as KILLED."""
    import signal

    from .progress import ConsoleProgress
    from .runner import LotteryRunner

    def terminate(signum, frame):  # SIGTERM takes the same path as Ctrl-C
        raise KeyboardInterrupt

    if experiment.spec.launcher.name != "local":
        _execute_distributed(experiment, tracker, resume_id, tracking_uri, terminate)
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    _print_plan(experiment)
    runner = LotteryRunner(experiment, tracker, ConsoleProgress(experiment.trainings()),
                           resume=resume_id)
    try:
        finished = runner.run()
    except LthError as error:
        _fail(error)
    except KeyboardInterrupt:
        err.print(f"interrupted: the open runs were ended as KILLED; resume with: "
                  f"lth-suite resume {tracker.parent_id} --tracking-uri {tracker.uri}",
                  highlight=False, markup=False)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.progress.stop()
    elapsed = runner.progress.elapsed()
    _print_summary(finished.summary, elapsed)
    _print_time_split(finished, elapsed)
    out.print(f"parent run {finished.parent_run_id} in {tracker.uri}", highlight=False)
    if experiment.spec.report.enabled:
        _auto_report(tracker.uri, finished.parent_run_id, experiment.spec.report.levels)
    out.print("open the MLflow UI with: [bold]lth-suite ui[/]"
              + (f" --tracking-uri {tracker.uri}" if tracking_uri else ""), highlight=False)


def _execute_distributed(experiment, tracker, resume_id: str | None,
                         tracking_uri: str | None, terminate) -> None:
    """Run or resume an experiment's units through its launcher (e.g. Ray tasks)."""
    import signal

    from .distributed import Driver, Planned, check_launcher
    from .progress import ConsoleProgress

    spec = experiment.spec
    launcher = check_launcher(spec, experiment.plugins, tracker.uri)
    _print_plan(experiment)
    err.print(f"launcher {spec.launcher.name}: units run as they become ready; "
              f"tracking at {tracker.uri}", highlight=False, markup=False)
    progress = ConsoleProgress(experiment.trainings())
    driver = Driver(experiment.plugins, launcher, tracker.uri, progress)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        result = driver.run([Planned(spec, tracker, experiment, resume_id)])[0]
    except LthError as error:
        _fail(error)
    except KeyboardInterrupt:
        err.print(f"interrupted: the units were cancelled and the open runs ended as KILLED; "
                  f"resume with: lth-suite resume {tracker.parent_id} --tracking-uri "
                  f"{tracker.uri}", highlight=False, markup=False)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.stop()
    if result.error is not None:
        err.print(f"experiment stopped; parent run {result.parent_id} ended FAILED; resume "
                  f"with: lth-suite resume {result.parent_id} --tracking-uri {tracker.uri}",
                  highlight=False, markup=False)
        _fail(result.error)
    finished = result.finished
    _print_summary(finished.summary, driver.restored_progress.elapsed())
    out.print(f"parent run {finished.parent_run_id} in {tracker.uri}", highlight=False)
    if spec.report.enabled:
        _auto_report(tracker.uri, finished.parent_run_id, spec.report.levels)
    out.print(f"open the MLflow UI with: [bold]lth-suite ui[/] --tracking-uri {tracker.uri}",
              highlight=False)


@app.command(hidden=True)
def mlproject(
    model: Annotated[str, typer.Option(help="preset: lenet, conv2, conv4, conv6, vgg19, resnet20")] = "lenet",
    spec: Annotated[str, typer.Option(help="a spec file instead of the preset")] = "",
    dataset: str = "", data_root: str = "", levels: str = "", iterations: str = "",
    replicates: str = "", device: str = "",
    overrides: Annotated[str, typer.Option(help="KEY=VALUE pairs separated by ';'")] = "",
) -> None:
    """The ``mlflow run`` entry point: a preset (or spec) plus the project's parameters."""
    from .presets import preset_path, project_overrides

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
    checkpoints, pruning, analyzers), from the timings each training reports."""
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
    table = Table(title=f"test accuracy at the early-stop iteration ({seconds:.1f} s)")
    table.add_column("level", justify="right")
    table.add_column("weights left", justify="right")
    for branch in branches:
        table.add_column(branch, justify="right")
    for row in rows:
        cells = [f"{row.get(f'{b}/early_stop_test_accuracy', float('nan')):.4f}"
                 if f"{b}/early_stop_test_accuracy" in row else "-" for b in branches]
        table.add_row(str(int(row["level"])), f"{100 * row['density']:.1f}%", *cells)
    out.print(table)


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec (and its plugin params) without running it."""
    from .spec_loading import spec_hash

    try:
        _, experiment_spec = _load(spec, set_)
    except LthError as error:
        _fail(error)
    out.print(f"{spec}: valid (hash {spec_hash(experiment_spec)})", highlight=False, markup=False)


@app.command()
def schema() -> None:
    """Print the spec's JSON schema, plugins' params included, for editors."""
    from .plugins import load_plugins
    from .spec_loading import json_schema

    try:
        plugins = load_plugins()
    except LthError as error:
        _fail(error)
    sys.stdout.write(json.dumps(json_schema(plugins.registry), indent=2) + "\n")


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
            ) -> None:
    """List the plugins, their versions, what each provides, and any that failed to load."""
    from .plugins import load_plugins

    try:
        loaded = load_plugins()
    except LthError as error:
        _fail(error)
    rows = [{"plugin": info.name, "version": info.version, "distribution": info.distribution,
             "status": info.status, "error": info.error, "provides": info.provides}
            for info in loaded.infos.values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="lth-suite plugins")
    for column in ("plugin", "version", "status", "provides"):
        table.add_column(column)
    for row in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        if row["status"] != "ok":
            provides = f"{provides or '(unknown)'}\nerror: {row['error']}"
        table.add_row(row["plugin"], row["version"], row["status"], provides or "(hooks only)")
    out.print(table)


@app.command()
def ui(tracking_uri: UriOpt = None,
       port: Annotated[int, typer.Option(help="port")] = 5000,
       host: Annotated[str, typer.Option(help="interface; 0.0.0.0 exposes the UI to the "
                                         "network")] = "127.0.0.1") -> None:
    """Start the MLflow UI (on 127.0.0.1 unless told otherwise) for the configured store."""
    from .tracking import resolve_tracking_uri, ui_command
    import subprocess

    uri = resolve_tracking_uri(tracking_uri, None)
    err.print(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C stops it)", highlight=False)
    try:
        raise typer.Exit(subprocess.call(ui_command(uri, port, host)))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _auto_report(uri: str, parent_run_id: str, levels: list[int] | None) -> None:
    """The report at the end of ``run``; a failure warns but never fails the finished run."""
    retry = f"retry with: lth-suite report {parent_run_id} --tracking-uri {uri}"
    try:
        from .report import report as write_report

        result = write_report(parent_run_id, uri, levels=levels)
    except KeyboardInterrupt:
        err.print(f"warning: report interrupted; the experiment is finished; {retry}",
                  highlight=False, markup=False)
        return
    except Exception as exc:  # the experiment is finished and logged: keep exit code 0
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        err.print(f"warning: the report could not be written ({type(exc).__name__}: {first}); "
                  f"{retry}", highlight=False, markup=False)
        return
    out.print(f"report: {result.folder}/ (also logged to the parent run under report/)",
              highlight=False, markup=False)


ExperimentArg = Annotated[Optional[str], typer.Argument(
    help="parent run id, MLflow experiment name (its latest run), spec hash or run name",
    show_default=False)]
SweepOpt = Annotated[Optional[str], typer.Option(
    "--sweep", help="instead of EXPERIMENT: a sweep id (or its first digits), every point side "
    "by side (default folder: reports/sweep-ID8/)", show_default=False)]


@app.command()
def report(experiment: ExperimentArg = None,
           out_dir: Annotated[Optional[Path], typer.Option(
               "--out", help="folder for the figures and summary.md (default: reports/RUN_NAME/)",
               show_default=False)] = None,
           tracking_uri: UriOpt = None,
           levels: Annotated[Optional[str], typer.Option(
               "--levels", help="levels drawn in accuracy_vs_iteration.png, e.g. 0,2,5 "
               "(default: a few spread levels)", show_default=False)] = None,
           sweep: SweepOpt = None,
           ) -> None:
    """Write paper-style figures and a summary table of a finished experiment."""
    from .report import parse_levels
    from .report import report as write_report
    from .tracking import resolve_tracking_uri

    if sweep is not None or experiment is None:
        _sweep_report(sweep, experiment, out_dir, tracking_uri)
        return
    try:
        result = write_report(experiment, resolve_tracking_uri(tracking_uri, None), out_dir,
                              parse_levels(levels))
    except LthError as error:
        _fail(error)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)
    out.print(f"report of {result.run_name} in {result.folder}/, also logged to parent run "
              f"{result.parent_run_id} under report/", highlight=False, markup=False)


def _sweep_report(sweep: str | None, experiment: str | None, out_dir: Path | None,
                  tracking_uri: str | None) -> None:
    """``report --sweep ID``: every point of a sweep side by side."""
    from .tracking import resolve_tracking_uri

    try:
        if sweep is None or experiment is not None:
            raise LthError("report: give either an EXPERIMENT or --sweep ID")
        from .sweep_report import sweep_report

        result = sweep_report(sweep, resolve_tracking_uri(tracking_uri, None), out_dir)
    except LthError as error:
        _fail(error)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)
    out.print(f"report of sweep {result.sweep_id} ({len(result.points)} points) in "
              f"{result.folder}/", highlight=False, markup=False)


@app.command()
def sweep(sweep_file: Annotated[Path, typer.Argument(
              help="sweep file (YAML): base spec + grid and/or points", show_default=False)],
          set_: SetOpt = None, tracking_uri: UriOpt = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="validate every point and "
                                                "print them; train and log nothing")] = False,
          ) -> None:
    """Run every point of a sweep (a base spec and overrides) under one MLflow experiment."""
    import signal

    from .plugins import load_plugins
    from .sweep import check_points, load_sweep, run_sweep
    from .tracking import resolve_tracking_uri

    try:
        plugins = load_plugins()
        plan = load_sweep(sweep_file, plugins, set_ or [])
        uri = resolve_tracking_uri(tracking_uri, plan.points[0].spec.tracking.uri)
        from .distributed import check_launcher

        check_launcher(plan.points[0].spec, plugins, uri)
        check_points(plan, plugins)
    except LthError as error:
        _fail(error)
    err.print(f"sweep {plan.sweep_id}: {len(plan.points)} points of {plan.path} into MLflow "
              f"experiment '{plan.experiment}' at {uri}, launcher {plan.launcher}",
              highlight=False, markup=False)
    for point in plan.points:
        err.print(f"  point {point.index}: {point.label}", highlight=False, markup=False)
    if dry_run:
        return

    def terminate(signum, frame):  # SIGTERM takes the same path as Ctrl-C
        raise KeyboardInterrupt

    from .progress import ConsoleProgress

    def announce(point) -> None:
        err.print(f"point {point.index}/{len(plan.points)}: {point.label}", highlight=False,
                  markup=False)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        results = run_sweep(plan, plugins, uri, ConsoleProgress, announce)
    except LthError as error:
        _fail(error)
    except KeyboardInterrupt:
        err.print("interrupted: the open runs were ended as KILLED", highlight=False,
                  markup=False)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_sweep(plan, results, uri)


def _print_sweep(plan, results, uri: str) -> None:
    table = Table(title=f"sweep {plan.sweep_id}: ticket test accuracy at the early-stop "
                        "iteration, last level")
    for column in ("point", "overrides", "parent run", "weights left", "ticket"):
        table.add_column(column, justify="right" if column in ("weights left", "ticket")
                         else "left")
    for result in results:
        last = result.summary[-1] if result.summary else {}
        table.add_row(str(result.point.index), result.point.label, result.parent_id or "-",
                      f"{100 * last['density']:.1f}%" if last else "-",
                      f"{last.get('ticket/early_stop_test_accuracy', float('nan')):.4f}"
                      if last else f"failed: {result.error}")
    out.print(table)
    if plan.points[0].spec.report.enabled:
        try:
            from .sweep_report import sweep_report

            written = sweep_report(plan.sweep_id, uri)
            out.print(f"report: {written.folder}/", highlight=False, markup=False)
        except Exception as exc:  # the sweep is logged: a report failure only warns
            err.print(f"warning: the sweep report could not be written ({exc})",
                      highlight=False, markup=False)
    out.print(f"rewrite the report with: lth-suite report --sweep {plan.sweep_id} "
              f"--tracking-uri {uri}", highlight=False, markup=False)
    failed = [result for result in results if result.error is not None]
    if failed:
        for result in failed:
            err.print(f"error: point {result.point.index} ({result.point.label}): {result.error}",
                      highlight=False, markup=False)
        raise typer.Exit(max(result.error.exit_code for result in failed))


@app.command()
def export(run_id: Annotated[str, typer.Argument(
               help="a child run id, e.g. of r0-level3-ticket", show_default=False)],
           out_dir: Annotated[Path, typer.Option("--out", help="folder to write into",
                                                 show_default=False)],
           tracking_uri: UriOpt = None) -> None:
    """Export a trained ticket: masked state dict, mask, and a shrunk dense network."""
    from .export import export_run
    from .tracking import open_reader, resolve_tracking_uri

    try:
        result = export_run(open_reader(resolve_tracking_uri(tracking_uri, None)), run_id,
                            out_dir)
    except LthError as error:
        _fail(error)
    _print_export(result)


def _print_export(result) -> None:
    table = Table(title=f"{result.run_name} ({result.architecture}, input "
                        f"{'x'.join(map(str, result.input_shape))})")
    for column in ("network", "parameters", "nonzero", "MACs / example", "sparse MACs"):
        table.add_column(column, justify="left" if column == "network" else "right")
    rows = [("masked (full size)", result.before)]
    if result.after is not None:
        rows.append(("shrunk", result.after))
    for label, counts in rows:
        table.add_row(label, f"{counts.parameters:,}", f"{counts.nonzero:,}",
                      f"{counts.macs:,}", f"{counts.sparse_macs:,}")
    out.print(table)
    if result.after is None:
        out.print(f"not shrunk: {result.reason}; wrote the masked state dict and the mask only",
                  highlight=False, markup=False)
    for change in result.layers[:-1]:
        kept = f", {change.constant_kept} constant kept" if change.constant_kept else ""
        out.print(f"{change.layer}: {change.before} -> {change.after} units/channels "
                  f"({change.constant_removed} constant removed or folded, "
                  f"{change.unused_removed} without outgoing weights{kept})",
                  highlight=False, markup=False)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)


def version_callback(value: bool) -> None:
    """Print the version and exit."""
    if value:
        out.print(f"lth-suite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                                is_eager=True, help="show the version")] = False,
          ) -> None:
    """Lottery Ticket Hypothesis experiments, tracked in MLflow."""


def main() -> None:
    """Console-script entry point."""
    app()
