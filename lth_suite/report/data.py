"""Paper-style report of a finished experiment, read back from the MLflow store.

Everything comes from the stored runs (the children's summary metrics, histories and
``mask.npz`` artifacts), so a report can be written for any experiment in a store, long
after it ran. Figures are in ``report_figures``; this module gathers the data, writes
``summary.md`` and logs the files to the parent run under ``report/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from ..errors import LthError
from ..pruning.masks import Mask
from ..analysis.similarity import chance_iou, iou
from ..tracking import RunRecord, StoreReader, open_reader

BRANCH_ORDER = ("ticket", "reinit", "random_prune")
FIGURES = ("accuracy_vs_weights.png", "early_stop_vs_weights.png", "accuracy_vs_iteration.png",
           "mask_similarity.png")
SUMMARY = "summary.md"
ARTIFACT_DIR = "report"


@dataclass
class Cell:
    """One (branch, level) over replicates: density and the early-stop metrics."""

    level: int
    density: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # test accuracy at early stop, 0..1
    iteration: list[float] = field(default_factory=list)  # early-stop iteration

    @property
    def percent(self) -> float:
        """Mean percent of weights remaining."""
        return 100 * mean(self.density)


@dataclass
class Curve:
    """Test accuracy against iteration of one level's ticket, one series per replicate."""

    level: int
    percent: float
    series: list[list[tuple[int, float]]]


@dataclass
class ReportData:
    """Everything the figures and the table show."""

    parent: RunRecord
    replicates: int
    levels: list[int]
    cells: dict[str, dict[int, Cell]]  # branch -> level -> cell
    curves: list[Curve]
    masks: dict[tuple[int, int], Mask]  # (replicate, level) -> ticket mask

    @property
    def title(self) -> str:
        """The parent run's name, which holds the experiment name and hash."""
        return self.parent.name

    def branches(self) -> list[str]:
        """Branches present, ticket first."""
        return sorted(self.cells, key=lambda b: (BRANCH_ORDER.index(b)
                                                 if b in BRANCH_ORDER else 99, b))


@dataclass
class ReportResult:
    """Where a report went."""

    parent_run_id: str
    run_name: str
    folder: Path
    files: list[Path]


def default_levels(levels: list[int]) -> list[int]:
    """A few spread levels: the first, two in between and the last."""
    if len(levels) <= 4:
        return list(levels)
    picks = {levels[round(i * (len(levels) - 1) / 3)] for i in range(4)}
    return sorted(picks)


def parse_levels(text: str | None) -> list[int] | None:
    """``"0,2,5"`` to ``[0, 2, 5]``; None or empty to None."""
    if not text or not text.strip():
        return None
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise LthError(f"--levels {text!r}: expected levels separated by commas, "
                       "e.g. 0,2,5") from None
    if not levels or min(levels) < 0:
        raise LthError(f"--levels {text!r}: expected levels >= 0, e.g. 0,2,5")
    return levels


def _int_param(run: RunRecord, key: str) -> int | None:
    try:
        return int(run.params[key])
    except (KeyError, ValueError):
        return None


def collect(reader: StoreReader, parent: RunRecord,
            curve_levels: list[int] | None = None) -> ReportData:
    """Read the finished trainings of one experiment."""
    cells: dict[str, dict[int, Cell]] = {}
    tickets: dict[tuple[int, int], RunRecord] = {}
    replicates: set[int] = set()
    seen: set[tuple[int, int, str]] = set()
    for child in reader.children(parent.run_id):  # newest first
        level, replicate = _int_param(child, "level"), _int_param(child, "replicate")
        branch = child.params.get("branch")
        metrics = child.metrics
        if (level is None or replicate is None or not branch or child.status != "FINISHED"
                or "early_stop_test_accuracy" not in metrics
                or (replicate, level, branch) in seen):
            continue  # not one of ours, a training that did not finish, or an older copy
        seen.add((replicate, level, branch))
        density = metrics.get("density", float(child.params.get("density", "nan")))
        cell = cells.setdefault(branch, {}).setdefault(level, Cell(level))
        cell.density.append(density)
        cell.accuracy.append(metrics["early_stop_test_accuracy"])
        cell.iteration.append(metrics.get("early_stop_iteration", float("nan")))
        replicates.add(replicate)
        if branch == "ticket":
            tickets[(replicate, level)] = child
    if "ticket" not in cells:
        raise LthError(f"run {parent.run_id} ({parent.name}) has no finished ticket training "
                       "to report")
    levels = sorted(cells["ticket"])
    if curve_levels is None:
        curve_levels = default_levels(levels)
    missing = [level for level in curve_levels if level not in cells["ticket"]]
    if missing:
        raise LthError(f"report levels: level {missing[0]} has no finished ticket in {parent.name} "
                       f"(levels: {', '.join(map(str, levels))})")
    curves = []
    for level in curve_levels:
        runs = [run for (_, lv), run in sorted(tickets.items()) if lv == level]
        curves.append(Curve(level, cells["ticket"][level].percent,
                            [reader.history(run.run_id, "test_accuracy") for run in runs]))
    masks = {}
    for key, run in sorted(tickets.items()):
        payload = reader.artifact_bytes(run.run_id, "mask.npz")
        if payload is not None:
            masks[key] = Mask.unpack(payload)
    return ReportData(parent, len(replicates), levels, cells, curves, masks)


def iou_matrix(masks: dict[tuple[int, int], Mask],
               ) -> tuple[list[tuple[int, int]], list[list[float]]]:
    """Pairwise IoU of the pruned levels' ticket masks, ordered by replicate then level."""
    keys = sorted(key for key in masks if key[1] > 0) or sorted(masks)
    matrix = [[1.0 if a == b else iou(masks[a], masks[b]) for b in keys] for a in keys]
    return keys, matrix


def _spread(values: list[float], scale: float, digits: int) -> str:
    """``mean ± half the min-max range`` (just the mean for one value)."""
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "–"
    text = f"{scale * mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {scale * (max(values) - min(values)) / 2:.{digits}f}"
    return text


def summary_markdown(data: ReportData) -> str:
    """The summary table (one row per level) and a note on each figure, as Markdown."""
    branches = data.branches()
    parent = data.parent
    lines = [f"# {data.title}: lottery ticket report", ""]
    spec = {k[len("spec."):]: v for k, v in parent.params.items() if k.startswith("spec.")}
    what = ", ".join(f"{label} `{spec[key]}`" for label, key in (
        ("model", "model.name"), ("dataset", "dataset.name"),
        ("criterion", "pruning.criterion.name"),
        ("rewind", "rewind.name")) if key in spec)
    lines += [f"Parent run `{parent.run_id}`, spec hash "
              f"`{parent.tags.get('lth_suite.spec_hash', '?')}`, {data.replicates} replicate(s)"
              + (f"; {what}" if what else "") + ".", ""]
    spread = (f" ± is half the min–max range over the {data.replicates} replicates "
              "(the figures' bands)." if data.replicates > 1 else "")
    lines += ["Test accuracy (%) at the early-stop iteration (the evaluation with the lowest "
              f"validation loss), and that iteration.{spread}", ""]
    header = (["level", "weights remaining (%)"]
              + [f"{b} accuracy (%)" for b in branches]
              + [f"{b} early-stop iteration" for b in branches])
    lines += ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for level in data.levels:
        ticket = data.cells["ticket"][level]
        row = [str(level), f"{ticket.percent:.1f}"]
        row += [_spread(data.cells[b][level].accuracy, 100, 2) if level in data.cells[b] else "–"
                for b in branches]
        row += [_spread(data.cells[b][level].iteration, 1, 0) if level in data.cells[b] else "–"
                for b in branches]
        lines.append("| " + " | ".join(row) + " |")
    if data.replicates > 1 and data.masks:
        lines += ["", "## Ticket masks across replicates", "",
                  "Mean IoU (Jaccard index of the kept weights) between the tickets of different "
                  "replicates at the same level, and its expected value for independent random "
                  "masks of the same densities.", "",
                  "| level | weights remaining (%) | IoU across replicates | chance IoU |",
                  "|---:|---:|---:|---:|"]
        for level in data.levels:
            keys = sorted(k for k in data.masks if k[1] == level)
            pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]
            if level == 0 or not pairs:
                continue
            overlap = mean(iou(data.masks[a], data.masks[b]) for a, b in pairs)
            chance = mean(chance_iou(data.masks[a].density(), data.masks[b].density())
                          for a, b in pairs)
            lines.append(f"| {level} | {data.cells['ticket'][level].percent:.1f} | "
                         f"{overlap:.3f} | {chance:.3f} |")
    lines += ["", "## Figures", "",
              "- `accuracy_vs_weights.png`: test accuracy at the early-stop iteration against the "
              "percent of weights remaining (log scale, sparser to the right), per branch.",
              "- `early_stop_vs_weights.png`: the early-stop iteration against the percent of "
              "weights remaining, per branch.",
              "- `accuracy_vs_iteration.png`: the ticket's test accuracy during training at levels "
              + ", ".join(str(c.level) for c in data.curves) + ".",
              "- `mask_similarity.png`: IoU of the ticket masks of every (replicate, level) pair.",
              ""]
    return "\n".join(lines)


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


def write_report(reader: StoreReader, parent: RunRecord, out: Path | None = None,
                 levels: list[int] | None = None, log: bool = True) -> ReportResult:
    """Write the figures and ``summary.md`` into ``out`` and log them to the parent run."""
    from . import figures

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
        reader.log_files(parent.run_id, files, ARTIFACT_DIR)
    return ReportResult(parent.run_id, parent.name, folder, files)


def report(key: str, uri: str, out: Path | None = None, levels: list[int] | None = None,
           log: bool = True) -> ReportResult:
    """The report of the experiment named by ``key`` (a run id, an MLflow experiment
    name, a spec hash or a run name) in the store at ``uri``: the Python API."""
    reader = open_reader(uri)
    return write_report(reader, reader.find_experiment(key), out, levels, log)
