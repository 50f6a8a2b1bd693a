"""The report's figures, in the style of Frankle & Carbin (2019): one PNG each."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from ..tracking.names import MASK_ARTIFACT, RANDOM_PRUNE, REINIT, TICKET  # noqa: E402
from .data import Cell, ReportData, iou_matrix  # noqa: E402

STYLE = {  # color, marker, line style, legend text
    TICKET: ("tab:blue", "o", "-", "ticket (winning ticket: mask + rewound weights)"),
    REINIT: ("tab:orange", "s", "--", "reinit (ticket mask, random init)"),
    RANDOM_PRUNE: ("tab:green", "^", ":", "random_prune (random mask, same densities)"),
}
DPI = 150


def _style(branch: str, index: int) -> tuple[str, str, str, str]:
    return STYLE.get(branch, (f"C{index + 3}", "D", "-.", branch))


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _band_note(data: ReportData) -> str:
    return (f"lines: mean; bands: min–max over {data.replicates} replicates"
            if data.replicates > 1 else "one replicate")


def _branch_cells(data: ReportData, branch: str) -> list[Cell]:
    """A branch's cells by level; the controls start from the dense level 0 they share."""
    cells = dict(data.cells[branch])
    if 0 not in cells and 0 in data.cells[TICKET]:
        cells[0] = data.cells[TICKET][0]
    return [cells[level] for level in sorted(cells)]


def _weights_axis(ax, data: ReportData) -> None:
    """Log x axis of percent of weights remaining, reversed: sparser to the right."""
    percents = sorted({round(data.cells[TICKET][lv].percent, 6) for lv in data.levels},
                      reverse=True)
    ax.set_xscale("log")
    ax.set_xlim(max(percents) * 1.2, min(percents) / 1.2)
    step = max(1, len(percents) // 9)
    ax.xaxis.set_major_locator(FixedLocator(percents[::step]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{p:.3g}" for p in percents[::step]])
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, alpha=0.3)


def _per_weights(data: ReportData, path: Path, values, ylabel: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for index, branch in enumerate(data.branches()):
        color, marker, line, label = _style(branch, index)
        cells = _branch_cells(data, branch)
        x = [cell.percent for cell in cells]
        ys = [values(cell) for cell in cells]
        ax.plot(x, [mean(y) for y in ys], color=color, marker=marker, linestyle=line,
                label=label)
        if data.replicates > 1:
            ax.fill_between(x, [min(y) for y in ys], [max(y) for y in ys], color=color,
                            alpha=0.18, linewidth=0)
    _weights_axis(ax, data)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{data.title}: {title}")
    ax.legend(title=_band_note(data), fontsize="small", title_fontsize="small")
    _save(fig, path)


def accuracy_vs_weights(data: ReportData, path: Path) -> None:
    """Test accuracy at the early-stop iteration against percent of weights remaining."""
    _per_weights(data, path, lambda cell: [100 * a for a in cell.accuracy],
                 "test accuracy at early stop (%)", "accuracy as weights are pruned")


def early_stop_vs_weights(data: ReportData, path: Path) -> None:
    """The early-stop iteration against percent of weights remaining."""
    _per_weights(data, path, lambda cell: cell.iteration,
                 "early-stop iteration (min. validation loss)",
                 "learning speed as weights are pruned")


def accuracy_vs_iteration(data: ReportData, path: Path) -> None:
    """The ticket's test accuracy during training, at a few levels."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    colormap = matplotlib.colormaps["viridis"]
    for index, curve in enumerate(data.curves):
        color = colormap(index / max(1, len(data.curves) - 1) * 0.9)
        steps = sorted({step for series in curve.series for step, _ in series})
        by_step = [[100 * value for series in curve.series for s, value in series if s == step]
                   for step in steps]
        ax.plot(steps, [mean(v) for v in by_step], color=color, linewidth=1.6,
                label=f"level {curve.level}: {curve.percent:.3g}% of weights")
        if len(curve.series) > 1:
            ax.fill_between(steps, [min(v) for v in by_step], [max(v) for v in by_step],
                            color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{data.title}: ticket test accuracy during training")
    ax.grid(True, alpha=0.3)
    ax.legend(title=_band_note(data), fontsize="small", title_fontsize="small")
    _save(fig, path)


def mask_similarity(data: ReportData, path: Path) -> None:
    """Heatmap of the IoU of the ticket masks of every (replicate, level) pair."""
    keys, matrix = iou_matrix(data.masks)
    size = min(14.0, max(5.5, 0.5 * len(keys) + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    if not keys:
        ax.text(0.5, 0.5, f"no ticket {MASK_ARTIFACT} artifacts found", ha="center",
                va="center")
        ax.set_axis_off()
        _save(fig, path)
        return
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
    labels = [f"r{replicate} L{level} ({data.cells[TICKET][level].percent:.3g}%)"
              for replicate, level in keys]
    ticks = list(range(0, len(keys), max(1, len(keys) // 30)))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize="small")
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize="small")
    if len(keys) <= 14:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                        color="black" if value > 0.6 else "white")
    ax.set_xlabel("ticket mask (replicate r, level L, weights remaining)")
    ax.set_ylabel("ticket mask (replicate r, level L, weights remaining)")
    ax.set_title(f"{data.title}: ticket-mask overlap (IoU of kept weights)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="IoU (intersection / union)")
    _save(fig, path)
