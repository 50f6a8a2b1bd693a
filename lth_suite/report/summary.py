"""The report's ``summary.md``: one table row per level with intervals over replicates,
the ticket's paired comparison with each control, replicate overlap, the figures."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

from ..analysis.similarity import chance_iou, iou
from ..tracking.names import TICKET
from .data import Cell, ReportData, control_groups
from .inference_table import BuysRow, buys_markdown, buys_rows, machine_line
from .level_statistics import (
    LevelStatistics,
    accuracy_interval,
    comparison_text,
    interval_text,
    method_note,
)
from .numbers import weights_text
from .style import rewind_text

END_MARK = "†"  # an early stop at the last evaluation


def _what(data: ReportData) -> str:
    spec = data.spec
    what = ", ".join(f"{label} `{spec[key]}`" for label, key in (
        ("model", "model.name"), ("dataset", "dataset.name"),
        ("criterion", "pruning.criterion.name"), ("rewind", "rewind.name")) if key in spec)
    return f"{what} ({rewind_text(spec)})" if "rewind.name" in spec else what


def results_table(data: ReportData, levels: list[LevelStatistics]) -> list[str]:
    """The Markdown table of accuracy and early-stop iteration per level and branch."""
    branches = data.branches()
    header = (["level", "weights remaining (%)"] + [f"{b} accuracy (%)" for b in branches]
              + [f"{b} early-stop iteration" for b in branches])
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for stats in levels:
        row = [str(stats.level), weights_text(stats.percent)]
        row += [accuracy_interval(stats.accuracy.get(b)) for b in branches]
        for b in branches:
            text = interval_text(stats.iteration.get(b), 0)
            cell = data.cells[b].get(stats.level)
            row.append(text + (f" {END_MARK}" if cell is not None and data.at_end(cell) else ""))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def other_metrics_tables(data: ReportData) -> list[str]:
    """A table per further test metric the task logs at early stop (a language model's
    perplexity): its mean over replicates per level and branch."""
    branches = data.branches()
    names = sorted({name for cells in data.cells.values() for cell in cells.values()
                    for name in cell.others})
    lines: list[str] = []
    for name in names:
        lines += ["", f"## Test {name} at the early-stop iteration", "",
                  f"Mean over replicates of the task's test {name} at early stop.", "",
                  "| level | weights remaining (%) | "
                  + " | ".join(f"{b} {name}" for b in branches) + " |",
                  "|---:|---:|" + "---:|" * len(branches)]
        for level in data.levels:
            ticket = data.cells[TICKET].get(level)
            if ticket is None:
                continue
            row = [str(level), weights_text(ticket.percent)]
            for b in branches:
                values = data.cells[b].get(level, Cell(level)).others.get(name)
                row.append(f"{mean(values):.4g}" if values else "–")
            lines.append("| " + " | ".join(row) + " |")
    return lines


def comparison_table(levels: list[LevelStatistics]) -> list[str]:
    """The Markdown table of the ticket against each control, per level."""
    controls = list(dict.fromkeys(c.control for s in levels for c in s.comparisons))
    if not controls:
        return []
    lines = ["| level | weights remaining (%) | "
             + " | ".join(f"ticket − {c}" for c in controls) + " |",
             "|---:|---:|" + "---:|" * len(controls)]
    for stats in levels:
        if not stats.comparisons:
            continue
        found = {c.control: c for c in stats.comparisons}
        lines.append(f"| {stats.level} | {weights_text(stats.percent)} | " + " | ".join(
            comparison_text(found[c]) if c in found else "–" for c in controls) + " |")
    return lines


def _overlap_table(data: ReportData) -> list[str]:
    lines = ["| level | weights remaining (%) | IoU across replicates | chance IoU |",
             "|---:|---:|---:|---:|"]
    for level in data.levels:
        keys = sorted(k for k in data.masks if k[1] == level)
        pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]
        if level == 0 or not pairs:
            continue
        overlap = mean(iou(data.masks[a], data.masks[b]) for a, b in pairs)
        chance = mean(chance_iou(data.masks[a].density(), data.masks[b].density())
                      for a, b in pairs)
        lines.append(f"| {level} | {weights_text(data.cells[TICKET][level].percent)} | "
                     f"{overlap:.3f} | {chance:.3f} |")
    return lines


def summary_markdown(data: ReportData, levels: list[LevelStatistics],
                     figures: list[Path] = ()) -> str:
    """The summary (tables, the method of the statistics, the figures) as Markdown."""
    what = _what(data)
    lines = [f"# {data.title}: lottery ticket report", "",
             f"{data.caption}, {data.replicates} replicate(s)"
             + (f"; {what}" if what else "") + ".", "",
             "Test accuracy (%) at the early-stop iteration (the evaluation with the lowest "
             "validation loss), and that iteration. " + method_note(data), ""]
    lines += results_table(data, levels)
    if any(data.at_end(cell) for cells in data.cells.values() for cell in cells.values()):
        lines += ["", f"{END_MARK} the early stop was the last evaluation "
                  f"(iteration {data.last_evaluation}) in some replicate: validation loss was "
                  "still falling, so training may be too short to show its minimum."]
    lines += control_legend(data)
    lines += other_metrics_tables(data)
    lines += rewind_choice_lines(data)
    compared = comparison_table(levels)
    if compared:
        lines += ["", "## Ticket against the controls", "",
                  "Difference of test accuracy at early stop (ticket minus control, mean over "
                  "the replicates that trained both), the test's p-value and effect size.", ""]
        lines += compared
    if data.replicates > 1 and data.masks:
        lines += ["", "## Ticket masks across replicates", "",
                  "Mean IoU (Jaccard index of the kept weights) between the tickets of different "
                  "replicates at the same level, and its expected value for independent random "
                  "masks of the same densities.", ""]
        lines += _overlap_table(data)
    lines += _buys_section(data)
    stems = list(dict.fromkeys(path.stem for path in figures))
    if stems:
        formats = ", ".join(data.settings.formats)
        lines += ["", "## Figures", "", f"Each figure is written as {formats}.", ""]
        notes = {**FIGURE_NOTES, "accuracy_vs_iteration": _curves_note(data)}
        lines += [f"- `{stem}`: {notes.get(stem) or _other_note(stem)}" for stem in stems]
    return "\n".join(lines) + "\n"


def _other_note(stem: str) -> str:
    """What a figure without a fixed note shows: a task's metric, or an analyzer's."""
    if stem.endswith("_vs_weights"):
        return (f"the task's test {stem[:-len('_vs_weights')]} at the early-stop iteration "
                "against the percent of weights remaining, per branch")
    return "what the analyzer logged, by level"


def rewind_choice_lines(data: ReportData) -> list[str]:
    """What a searched rewind (``auto``) chose per replicate, with its curve; none for
    other rewinds."""
    if not data.rewind_search:
        return []
    lines = ["", "## Rewind point chosen by instability", ""]
    for replicate, choice in sorted(data.rewind_search.items()):
        curve = ", ".join(f"{row['iteration']}it {100 * row['barrier']:.1f}%"
                          for row in choice.get("curve", []))
        threshold = choice.get("threshold")
        under = f" (error barrier under {100 * threshold:g}%)" if threshold is not None else ""
        verdict = (f"rewound to iteration {choice['chosen']}, the earliest stable candidate{under}"
                   if choice.get("stable", True) else
                   f"rewound to iteration {choice['chosen']}, the last candidate: none was "
                   f"stable{under}")
        lines.append(f"- replicate {replicate}: {verdict}; barrier by candidate: "
                     f"{curve or 'not logged'}.")
    return lines


def measured_buys(data: ReportData) -> tuple[list[BuysRow], dict[str, str]]:
    """The ``inference`` analyzer's rows per (level, batch) and its machine; none when it
    did not run."""
    metrics = data.analyses.get("inference")
    if not metrics:
        return [], {}
    tickets = data.cells[TICKET]
    machine = {k.split(".", 2)[2]: v for k, v in data.parent.tags.items()
               if k.startswith("inference.machine.")}
    rows = buys_rows(metrics, {lv: c.percent for lv, c in tickets.items()},
                     {lv: 100 * mean(c.accuracy) for lv, c in tickets.items()})
    return rows, machine


def _buys_section(data: ReportData) -> list[str]:
    rows, machine = measured_buys(data)
    return ["", *buys_markdown(rows, machine_line(machine))] if rows else []


def control_legend(data: ReportData) -> list[str]:
    """What each control is, grouped by what it changes of the ticket (from its plugin)."""
    groups = control_groups(data.parent)
    if not groups:
        return []
    heading = {"mask": "Controls that change the mask", "weights": "Controls that change the "
               "starting weights", "": "Other controls"}
    lines = ["", "## The controls", ""]
    for varies, controls in groups.items():
        lines.append(f"{heading.get(varies, f'Controls that change the {varies}')}:")
        lines += [f"- `{name}`: {description}" for name, description in controls.items()]
    return lines


def _curves_note(data: ReportData) -> str:
    tickets = [str(c.level) for c in data.curves if c.branch == TICKET]
    controls = sorted({str(c.level) for c in data.curves if c.branch != TICKET})
    return ("test accuracy during training, zoomed to the range the curves cover: the ticket "
            f"at levels {', '.join(tickets)}."
            + (f" The controls at level {', '.join(controls)}." if controls else ""))


FIGURE_NOTES = {
    "rewind_instability": "the error barrier between two copies trained from each candidate "
    "rewind point with different data orders, per replicate; the star is the chosen point.",
    "accuracy_vs_weights": "test accuracy at the early-stop iteration against the percent of "
    "weights remaining (log scale, sparser to the right), per branch, with interval bars.",
    "early_stop_vs_weights": "the early-stop iteration against the percent of weights "
    "remaining, per branch; circled points stopped at the last evaluation.",
    "mask_similarity": "IoU of the ticket masks of every (replicate, level) pair, with the "
    "chance IoU of random masks of the same densities above the diagonal.",
    "analysis_layer_density": "per-layer density of the ticket against weights remaining.",
    "analysis_instability": "the error barrier between two trainings of the ticket.",
    "analysis_init_stats": "mean |w| at init of the weights kept and pruned.",
    "analysis_structure": "units and channels connected from input to output.",
    "analysis_mask_similarity": "mask overlap between levels, replicates and the random "
    "control, beside chance.",
    "analysis_inference": "the ticket's test accuracy against the speed-up each format "
    "measured over the masked dense network, per batch size.",
}
