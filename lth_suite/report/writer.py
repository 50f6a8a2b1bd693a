"""Writing a report: gather the data, compute the statistics, draw the figures, write
``summary.md``, and put it all on the parent run. The Python API of reports is ``report``.

On the parent run, ``summary.md`` and the PNG figures go to the artifact root (the first
thing the MLflow UI lists and previews), the print formats (PDF, SVG) under ``report/``;
the summary also becomes the run's description, and the statistics its metrics at
``step = level``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import LthError
from ..spec.report import Report
from ..tracking import RunRecord, StoreReader, Tracker, open_reader
from ..tracking.names import NOTE_LIMIT, NOTE_TAG, REPORT_FOLDER
from . import figures
from .analyzer_figures import analyzer_figures
from .data import ReportResult, collect
from .level_statistics import LevelStatistics, level_statistics, statistics_metrics
from .summary import summary_markdown

FIGURES = ("accuracy_vs_weights", "early_stop_vs_weights", "accuracy_vs_iteration",
           "mask_similarity")  # file stems; each is written in every format of the spec
SUMMARY = "summary.md"
PREVIEWED = {".png", ".md"}  # what the MLflow UI shows inline: logged at the artifact root


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


def write_report(reader: StoreReader, parent: RunRecord, out: Path | None = None,
                 levels: list[int] | None = None, log: bool = True,
                 settings: Report | None = None) -> ReportResult:
    """Write the figures and ``summary.md`` into ``out`` and log them to the parent run."""
    data = collect(reader, parent, levels, settings)
    folder = out if out is not None else Path("reports") / _folder_name(parent.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LthError(f"{folder}: cannot create the report folder "
                       f"({exc.strerror or exc})") from None
    statistics = level_statistics(data)
    files: list[Path] = []
    for stem, draw in zip(FIGURES, (figures.accuracy_vs_weights, figures.early_stop_vs_weights,
                                    figures.accuracy_vs_iteration, figures.mask_similarity)):
        files += draw(data, folder / stem)
    files += figures.others_vs_weights(data, folder)
    files += figures.rewind_instability(data, folder / "rewind_instability")
    files += analyzer_figures(data, folder)
    summary = folder / SUMMARY
    text = summary_markdown(data, statistics, files)
    summary.write_text(text, encoding="utf-8")
    files.append(summary)
    if log:
        tracker = Tracker(reader.uri)
        tracker.log_files(parent.run_id, [f for f in files if f.suffix in PREVIEWED], "")
        printed = [f for f in files if f.suffix not in PREVIEWED]
        if printed:
            tracker.log_files(parent.run_id, printed, REPORT_FOLDER)
        _log_statistics(tracker, reader, parent, statistics)
        tracker.set_tag(parent.run_id, NOTE_TAG, run_note(text))
    return ReportResult(parent.run_id, parent.name, folder, files, statistics, data,
                        parent.status)


def run_note(summary: str) -> str:
    """The parent run's description: the summary without its list of figures, cut to what
    an MLflow tag holds."""
    note = summary.split("\n## Figures", 1)[0].rstrip() + "\n"
    if len(note) > NOTE_LIMIT:
        cut = "\n\n… (cut; the whole table is in summary.md)\n"
        note = note[:NOTE_LIMIT - len(cut)].rsplit("\n", 1)[0] + cut
    return note


def _log_statistics(tracker: Tracker, reader: StoreReader, parent: RunRecord,
                    statistics: list[LevelStatistics]) -> None:
    """Each level's statistics on the parent run at ``step = level``, once: a report
    written again does not log them twice."""
    for level in statistics:
        metrics = statistics_metrics(level)
        if metrics and not reader.has_metric_at(parent.run_id, next(iter(metrics)), level.level):
            tracker.log_metrics(parent.run_id, metrics, step=level.level)


def report(key: str, uri: str, out: Path | None = None, levels: list[int] | None = None,
           log: bool = True) -> ReportResult:
    """The report of the experiment named by ``key`` (a run id, an MLflow experiment
    name, a spec hash or a run name) in the store at ``uri``: the Python API."""
    reader = open_reader(uri)
    return write_report(reader, reader.find_experiment(key), out, levels, log)
