"""``lth-suite bench``: what the tickets of a finished experiment buy on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import LthError
from .common import UriOpt, _fail, app, err, out, print_buys


def parse_batches(text: str) -> list[int]:
    """``"1,64,256"`` as sorted distinct positive batch sizes; an LthError naming --batch."""
    try:
        batches = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        batches = []
    if not batches or batches[0] < 1:
        raise LthError(f"--batch: expected positive integers separated by commas, got {text!r}")
    return batches


@app.command()
def bench(key: Annotated[str, typer.Argument(
              metavar="RUN_ID|EXPERIMENT", help="a ticket's child run id, or an experiment "
              "(parent run id, MLflow experiment name, spec hash or run name): the first "
              "replicate's ticket at every level", show_default=False)],
          batch: Annotated[str, typer.Option("--batch", help="batch sizes, comma-separated")
                           ] = "1,64",
          device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
          threads: Annotated[int, typer.Option("--threads", min=1,
                                               help="CPU threads while timing")] = 1,
          formats: Annotated[str | None, typer.Option(
              "--formats", help="formats beside dense, comma-separated (default: every "
              "registered one)", show_default=False)] = None,
          rounds: Annotated[int, typer.Option("--rounds", min=1,
                                              help="interleaved timing rounds")] = 7,
          json_out: Annotated[Path | None, typer.Option(
              "--json", help="also write the measurements to this JSON file",
              show_default=False)] = None,
          tracking_uri: UriOpt = None) -> None:
    """Measure latency, memory and size of finished tickets in every runnable format."""
    from ..analysis.bench import bench as measure
    from ..analysis.inference import MeasureSettings
    from ..plugins.manager import load_plugins
    from ..report.inference_table import buys_rows
    from ..tracking import open_reader, resolve_tracking_uri

    try:
        if device not in ("cpu", "cuda"):
            raise LthError(f"--device: expected cpu or cuda, got {device!r}")
        settings = MeasureSettings(parse_batches(batch), threads, device, rounds)
        names = [f.strip() for f in formats.split(",") if f.strip()] if formats else None
        plugins = load_plugins()
        result = measure(open_reader(resolve_tracking_uri(tracking_uri, None)), key, settings,
                         plugins, names)
    except LthError as error:
        _fail(error)
    rows = buys_rows(result.metrics(), result.percents, result.accuracy)
    print_buys(rows, result.machine, f"{result.title}: what this ticket buys here")
    out.print(f"inputs: {result.inputs_note}", highlight=False, markup=False)
    for level, measured in result.measurements.items():
        for r in measured.results:
            if r.status != "ok":
                err.print(f"level {level}: {r.format} {r.status}: {r.reason}",
                          highlight=False, markup=False)
    if json_out is not None:
        payload = {"title": result.title, "machine": result.machine, "runs": result.runs,
                   "percents": result.percents, "accuracy": result.accuracy,
                   "rows": {level: m.rows() for level, m in result.measurements.items()}}
        try:
            json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(LthError(f"{json_out}: cannot write ({exc.strerror or exc})"))
        out.print(str(json_out), highlight=False, markup=False)

