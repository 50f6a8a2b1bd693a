"""The sweep command: many experiments from one base spec and a grid of overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import LthError
from ..report.numbers import accuracy_text, weights_text
from ..tracking.names import DENSITY, EARLY_STOP_ACCURACY, TICKET, branch_metric
from .common import SetOpt, UriOpt, _fail, app, err, out, stopping_cleanly


@app.command()
def sweep(sweep_file: Annotated[Path, typer.Argument(
              help="sweep file (YAML): base spec + grid and/or points", show_default=False)],
          set_: SetOpt = None, tracking_uri: UriOpt = None,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="validate every point and "
                                                "print them; train and log nothing")] = False,
          resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted "
                                               "sweep: points it finished are skipped, the "
                                               "others resume where they stopped")] = False,
          ) -> None:
    """Run every point of a sweep (a base spec and overrides) under one MLflow experiment."""
    import shlex

    from ..launch.sweep import check_sweep, run_sweep
    from ..plugins.manager import load_plugins
    from ..spec.sweeps import load_sweep
    from ..tracking import resolve_tracking_uri

    try:
        plugins = load_plugins()
        plan = load_sweep(sweep_file, plugins, set_ or [])
        uri = resolve_tracking_uri(tracking_uri, plan.points[0].spec.tracking.uri)
        check_sweep(plan, plugins, uri)
    except LthError as error:
        _fail(error)
    err.print(f"sweep {plan.sweep_id}: {len(plan.points)} points of {plan.path} into MLflow "
              f"experiment '{plan.experiment}' at {uri}, launcher {plan.launcher}",
              highlight=False, markup=False)
    for point in plan.points:
        err.print(f"  point {point.index}: {point.label}", highlight=False, markup=False)
    if dry_run:
        return

    from ..lottery.progress import ConsoleProgress

    def announce(point, what: str) -> None:
        err.print(f"point {point.index}/{len(plan.points)}: {point.label} ({what})",
                  highlight=False, markup=False)

    def again() -> str:
        return " ".join(["lth-suite sweep", shlex.quote(str(sweep_file)),
                         *(f"--set {shlex.quote(item)}" for item in set_ or []),
                         *([f"--tracking-uri {shlex.quote(tracking_uri)}"] if tracking_uri
                           else []), "--resume"])

    with stopping_cleanly(again):
        try:
            results = run_sweep(plan, plugins, uri, ConsoleProgress, announce, resume=resume)
        except LthError as error:
            _fail(error)
    _print_sweep(plan, results, uri)


def _print_sweep(plan, results, uri: str) -> None:
    table = Table(title=f"sweep {plan.sweep_id}: ticket test accuracy at the early-stop "
                        "iteration, last level, %")
    numbers = ("weights left (%)", "ticket acc. (%)")
    for column in ("point", "overrides", "parent run", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for result in results:
        last = result.summary[-1] if result.summary else {}
        accuracy = last.get(branch_metric(TICKET, EARLY_STOP_ACCURACY), float("nan"))
        table.add_row(str(result.point.index), result.point.label, result.parent_id or "-",
                      weights_text(100 * last[DENSITY]) if last else "-",
                      accuracy_text(100 * accuracy) if last else f"failed: {result.error}")
    out.print(table)
    if plan.points[0].spec.report.enabled:
        try:
            from ..report.sweep import sweep_report

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
