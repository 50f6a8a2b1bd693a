"""Commands on finished experiments: report and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import LthError
from .common import UriOpt, _fail, app, err, out, print_statistics

ExperimentArg = Annotated[str | None, typer.Argument(
    help="parent run id, MLflow experiment name (its latest run), spec hash or run name",
    show_default=False)]
SweepOpt = Annotated[str | None, typer.Option(
    "--sweep", help="instead of EXPERIMENT: a sweep id (or its first digits), every point side "
    "by side (default folder: reports/sweep-ID8/)", show_default=False)]


@app.command()
def report(experiment: ExperimentArg = None,
           out_dir: Annotated[Path | None, typer.Option(
               "--out", help="folder for the figures and summary.md (default: reports/RUN_NAME/)",
               show_default=False)] = None,
           tracking_uri: UriOpt = None,
           levels: Annotated[str | None, typer.Option(
               "--levels", help="levels drawn in accuracy_vs_iteration, e.g. 0,2,5 "
               "(default: a few spread levels)", show_default=False)] = None,
           sweep: SweepOpt = None,
           controls: Annotated[bool, typer.Option(
               "--controls", help="with --sweep: draw the controls' accuracy too")] = False,
           ) -> None:
    """Write paper-style figures and a summary table of a finished experiment."""
    from ..report.data import parse_levels
    from ..report.writer import report as write_report
    from ..tracking import resolve_tracking_uri

    if sweep is not None or experiment is None:
        _sweep_report(sweep, experiment, out_dir, tracking_uri, controls)
        return
    try:
        result = write_report(experiment, resolve_tracking_uri(tracking_uri, None), out_dir,
                              parse_levels(levels))
    except LthError as error:
        _fail(error)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)
    print_statistics(result)
    out.print(f"report of {result.run_name} in {result.folder}/, also logged to parent run "
              f"{result.parent_run_id} (summary.md and PNG figures at its artifact root, "
              "PDF/SVG under report/)", highlight=False, markup=False)
    if result.status != "FINISHED":
        why = ("is still RUNNING (or its process died without ending it)"
               if result.status == "RUNNING" else f"ended {result.status}")
        err.print(f"warning: experiment {result.parent_run_id} {why}: the report is partial, "
                  "covering only the trainings finished so far", highlight=False, markup=False)


def _sweep_report(sweep: str | None, experiment: str | None, out_dir: Path | None,
                  tracking_uri: str | None, controls: bool = False) -> None:
    """``report --sweep ID``: every point of a sweep side by side."""
    from ..tracking import resolve_tracking_uri

    try:
        if sweep is None or experiment is not None:
            raise LthError("report: give either an EXPERIMENT or --sweep ID")
        from ..report.sweep import sweep_report

        result = sweep_report(sweep, resolve_tracking_uri(tracking_uri, None), out_dir,
                              controls)
    except LthError as error:
        _fail(error)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)
    out.print(f"report of sweep {result.sweep_id} ({len(result.points)} points) in "
              f"{result.folder}/", highlight=False, markup=False)


@app.command()
def export(run_id: Annotated[str, typer.Argument(
               help="a child run id, e.g. of r0-level3-ticket", show_default=False)],
           out_dir: Annotated[Path, typer.Option("--out", help="folder to write into",
                                                 show_default=False)],
           tracking_uri: UriOpt = None,
           fmt: Annotated[str | None, typer.Option(
               "--format", help="also write the ticket in one runnable format: auto (the "
               "fastest correct one, measured here), dense, csr, shrunk or 2:4 (CUDA); "
               "reload it with lth_suite.analysis.format_export.load_exported",
               show_default=False)] = None,
           batch: Annotated[int, typer.Option("--batch", min=1, help="with --format auto: "
                                              "the batch size to be fastest at")] = 1,
           device: Annotated[str, typer.Option("--device", help="with --format: cpu or cuda"
                                               )] = "cpu") -> None:
    """Export a trained ticket: masked state dict, mask, a shrunk dense network and, with
    --format, the ticket in a runnable (sparse) format."""
    from ..analysis.export import export_run
    from ..tracking import open_reader, resolve_tracking_uri

    try:
        reader = open_reader(resolve_tracking_uri(tracking_uri, None))
        chosen = None
        if fmt is not None:  # choose (and refuse) before anything is written
            _check_format(fmt, device)
            run = reader.run(run_id)
            if run is not None and run.parent_id is not None:  # else export_run says why
                chosen = _choose_format(reader, run, fmt, batch, device)
        result = export_run(reader, run_id, out_dir)
        written = chosen and _write_format(chosen, out_dir)
    except LthError as error:
        _fail(error)
    _print_export(result)
    if written is not None:
        correct = ", ".join(r.format for r in written.measurement.results if r.status == "ok")
        out.print(f"format {written.format} (correct here: {correct}; "
                  f"reloaded outputs within {written.reload_error:.1e} of the ticket's; "
                  f"inputs: {written.inputs_note})", highlight=False, markup=False)
        for path in written.files:
            out.print(str(path), highlight=False, markup=False)


def _check_format(fmt: str, device: str) -> None:
    from ..analysis.format_choice import CHOICES

    if fmt not in CHOICES:
        raise LthError(f"--format: unknown format {fmt!r}; choose one of {', '.join(CHOICES)}")
    if device not in ("cpu", "cuda"):
        raise LthError(f"--device: expected cpu or cuda, got {device!r}")


def _choose_format(reader, run, fmt: str, batch: int, device: str):
    from ..analysis.format_choice import choose_format
    from ..analysis.tickets import load_ticket
    from ..plugins.manager import load_plugins

    plugins = load_plugins()
    ticket = load_ticket(reader, run, plugins, max(batch, 64))
    return ticket, plugins, choose_format(ticket, fmt, batch, device, plugins)


def _write_format(chosen, out_dir: Path):
    from ..analysis.format_choice import write_format

    ticket, plugins, choice = chosen
    return write_format(choice, ticket, out_dir, plugins)


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
    semi = result.semi_structured
    if semi is not None and semi.candidates:
        if semi.converted:
            out.print(f"2:4 weights as semi-structured sparse tensors (CUDA, float16): "
                      f"{', '.join(semi.converted)}", highlight=False, markup=False)
        if semi.reason:
            out.print(f"2:4 weights kept in the masked dense model: {semi.reason}",
                      highlight=False, markup=False)
    for path in result.files:
        out.print(str(path), highlight=False, markup=False)
