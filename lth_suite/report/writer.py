"""Writing a report: gather the data, draw the figures, write ``summary.md``, log them all
to the parent run under ``report/``. The Python API of reports is ``report`` here."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LthError
from ..tracking import RunRecord, StoreReader, Tracker, open_reader
from ..tracking.names import REPORT_FOLDER
from . import figures
from .data import ReportResult, collect
from .summary import summary_markdown

FIGURES = ("accuracy_vs_weights.png", "early_stop_vs_weights.png", "accuracy_vs_iteration.png",
           "mask_similarity.png")
SUMMARY = "summary.md"


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


def write_report(reader: StoreReader, parent: RunRecord, out: Path | None = None,
                 levels: list[int] | None = None, log: bool = True) -> ReportResult:
    """Write the figures and ``summary.md`` into ``out`` and log them to the parent run."""
    data = collect(reader, parent, levels)
    folder = out if out is not None else Path("reports") / _folder_name(parent.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LthError(f"{folder}: cannot create the report folder "
                       f"({exc.strerror or exc})") from None
    files = [folder / name for name in FIGURES]
    figures.accuracy_vs_weights(data, files[0])
    figures.early_stop_vs_weights(data, files[1])
    figures.accuracy_vs_iteration(data, files[2])
    figures.mask_similarity(data, files[3])
    summary = folder / SUMMARY
    summary.write_text(summary_markdown(data), encoding="utf-8")
    files.append(summary)
    if log:
        Tracker(reader.uri).log_files(parent.run_id, files, REPORT_FOLDER)
    return ReportResult(parent.run_id, parent.name, folder, files)


def report(key: str, uri: str, out: Path | None = None, levels: list[int] | None = None,
           log: bool = True) -> ReportResult:
    """The report of the experiment named by ``key`` (a run id, an MLflow experiment
    name, a spec hash or a run name) in the store at ``uri``: the Python API."""
    reader = open_reader(uri)
    return write_report(reader, reader.find_experiment(key), out, levels, log)
