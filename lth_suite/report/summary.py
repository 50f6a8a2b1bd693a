"""The report's ``summary.md``: one table row per level, replicate overlap, the figures."""

from __future__ import annotations

from statistics import mean

from ..analysis.similarity import chance_iou, iou
from ..tracking.names import SPEC_HASH_TAG, SPEC_PARAM_PREFIX, TICKET
from .data import ReportData


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
    spec = {k[len(SPEC_PARAM_PREFIX):]: v for k, v in parent.params.items()
            if k.startswith(SPEC_PARAM_PREFIX)}
    what = ", ".join(f"{label} `{spec[key]}`" for label, key in (
        ("model", "model.name"), ("dataset", "dataset.name"),
        ("criterion", "pruning.criterion.name"),
        ("rewind", "rewind.name")) if key in spec)
    lines += [f"Parent run `{parent.run_id}`, spec hash "
              f"`{parent.tags.get(SPEC_HASH_TAG, '?')}`, {data.replicates} replicate(s)"
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
        ticket = data.cells[TICKET][level]
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
            lines.append(f"| {level} | {data.cells[TICKET][level].percent:.1f} | "
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
