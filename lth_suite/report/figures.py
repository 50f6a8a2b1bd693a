"""The report's figures, in the style of Frankle & Carbin (2019): means over replicates
with confidence intervals, titled with the experiment's name, in every asked format."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.ticker import FixedLocator, NullLocator

from ..analysis.replicate_tests import interval
from ..analysis.similarity import chance_iou
from ..spec.report import Report
from ..tracking.names import MASK_ARTIFACT, TICKET
from .data import Cell, Curve, ReportData, iou_matrix
from .level_statistics import ACCURACY_BOUNDS
from .numbers import weights_text
from .style import branch_label, branch_style, legend_below, new_figure, save, styled

ZOOM_FROM = 0.1  # the zoomed accuracy axis ignores the first 10% of training
NUMBERED_MASKS = 14  # beyond this many masks the heatmap's cells are too small for numbers


def interval_note(data: ReportData) -> str:
    """The legend title: what the lines and the bars or bands are."""
    if data.replicates < 2:
        return "one replicate: no interval"
    return (f"mean of {data.replicates} replicates, {100 * data.settings.confidence:.0f}% "
            f"{data.settings.interval} interval")


def _branch_cells(data: ReportData, branch: str) -> list[Cell]:
    """A branch's cells by level; the controls start from the dense level 0 they share."""
    cells = dict(data.cells[branch])
    if 0 not in cells and 0 in data.cells[TICKET]:
        cells[0] = data.cells[TICKET][0]
    return [cells[level] for level in sorted(cells)]


def weights_axis(ax, data: ReportData) -> None:
    """Log x axis of percent of weights remaining, reversed: sparser to the right."""
    weights_axis_from(ax, sorted({round(data.cells[TICKET][lv].percent, 6)
                                  for lv in data.levels}, reverse=True))


def weights_axis_from(ax, percents: list[float]) -> None:
    """The weights-remaining axis, ticks at ``percents`` (largest first)."""
    ax.set_xscale("log")
    ax.set_xlim(max(percents) * 1.2, min(percents) / 1.2)
    step = max(1, len(percents) // 9)
    ax.xaxis.set_major_locator(FixedLocator(percents[::step]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([weights_text(p) for p in percents[::step]])
    ax.set_xlabel("weights remaining (%, log scale)")


def mean_and_errors(settings: Report, values: list[list[float]],
                    bounds: tuple[float, float] | None = None):
    """Means and (below, above) error bar lengths of the configured interval, cut at
    ``bounds`` (an accuracy's 0 and 100%)."""
    means, below, above = [], [], []
    for found in (interval(v, settings.confidence, settings.interval, bounds) for v in values):
        mean = found.mean if found else float("nan")
        means.append(mean)
        below.append(mean - found.low if found and found.exists else 0.0)
        above.append(found.high - mean if found and found.exists else 0.0)
    return means, [below, above]


def cap_at_100(ax) -> None:
    """Intervals of few replicates can pass 100% accuracy; the axis stops just above it."""
    low, high = ax.get_ylim()
    ax.set_ylim(low, min(high, 100.5))


def _per_weights(data: ReportData, stem: Path, values, ylabel: str, title: str,
                 mark_end: bool = False, bounds: tuple[float, float] | None = None,
                 ) -> list[Path]:
    with styled(data.settings):
        fig, ax = new_figure(data.settings)
        for index, branch in enumerate(data.branches()):
            color, marker, line = branch_style(branch, index)
            cells = _branch_cells(data, branch)
            # Controls sit a little apart on the x axis, so their bars do not hide the ticket's.
            shift = 1.0 + 0.025 * index
            x = [cell.percent / shift for cell in cells]
            means, errors = mean_and_errors(data.settings, [values(cell) for cell in cells],
                                            bounds)
            ax.errorbar(x, means, yerr=errors if data.replicates > 1 else None, color=color,
                        marker=marker, linestyle=line, capsize=3 if data.replicates > 1 else 0,
                        label=branch_label(branch, data.spec, data.controls))
            if mark_end:
                ends = [(xi, m) for xi, m, cell in zip(x, means, cells) if data.at_end(cell)]
                if ends:
                    ax.plot(*zip(*ends), linestyle="none", marker="o", markersize=11,
                            markerfacecolor="none", markeredgecolor="black")
        if mark_end and data.last_evaluation is not None:
            ax.axhline(data.last_evaluation, color="gray", linestyle=(0, (1, 3)), linewidth=1,
                       label="last evaluation (circled: early stop there, training may be "
                             "too short)")
        weights_axis(ax, data)
        if bounds is not None:  # an accuracy axis
            cap_at_100(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{data.title}: {title}")
        legend_below(ax, interval_note(data), len(ax.get_legend_handles_labels()[1]))
        return save(fig, stem, data.settings, f"{data.title}: {title}", data.caption)


def accuracy_vs_weights(data: ReportData, stem: Path) -> list[Path]:
    """Test accuracy at the early-stop iteration against percent of weights remaining."""
    return _per_weights(data, stem, lambda cell: [100 * a for a in cell.accuracy],
                        "test accuracy at early stop (%)", "accuracy as weights are pruned",
                        bounds=ACCURACY_BOUNDS)


def others_vs_weights(data: ReportData, folder: Path) -> list[Path]:
    """``<metric>_vs_weights``: each further test metric the task logs at early stop (a
    language model's perplexity) against percent of weights remaining."""
    names = sorted({name for cells in data.cells.values() for cell in cells.values()
                    for name in cell.others})
    written: list[Path] = []
    for name in names:
        written += _per_weights(
            data, folder / f"{name}_vs_weights",
            lambda cell, name=name: cell.others.get(name, [float("nan")]),
            f"test {name} at early stop", f"{name} as weights are pruned")
    return written


def early_stop_vs_weights(data: ReportData, stem: Path) -> list[Path]:
    """The early-stop iteration against percent of weights remaining; early stops at the
    last evaluation are circled."""
    return _per_weights(data, stem, lambda cell: cell.iteration,
                        "early-stop iteration (min. validation loss)",
                        "learning speed as weights are pruned", mark_end=True)


def _curve_band(data: ReportData, curve: Curve):
    """Steps, mean accuracy (%) and interval bounds of a curve's replicates."""
    steps = sorted({step for series in curve.series for step, _ in series})
    by_step = {step: [] for step in steps}
    for series in curve.series:
        for step, value in series:
            by_step[step].append(100 * value)
    found = [interval(by_step[s], data.settings.confidence, data.settings.interval,
                      ACCURACY_BOUNDS) for s in steps]
    return (steps, [f.mean for f in found], [f.low if f.exists else f.mean for f in found],
            [f.high if f.exists else f.mean for f in found])


def zoom_range(means: list[tuple[list[int], list[float]]]) -> tuple[float, float]:
    """The accuracy range the curves cover after the first ``ZOOM_FROM`` of training,
    with a margin: curves above 90% stay apart."""
    last = max((steps[-1] for steps, _ in means if steps), default=0)
    kept = [m for steps, values in means for s, m in zip(steps, values)
            if s >= ZOOM_FROM * last]
    if not kept:
        return 0.0, 100.0
    low, high = min(kept), max(kept)
    margin = max(0.5, 0.08 * (high - low))
    return max(0.0, low - margin), min(100.0, high + margin)


def accuracy_vs_iteration(data: ReportData, stem: Path) -> list[Path]:
    """Test accuracy during training: the ticket at a few levels and the controls at the
    chosen ones (the paper's Figure 3), zoomed to the range the curves cover."""
    colormap = matplotlib.colormaps["viridis"]
    ticket_levels = [c.level for c in data.curves if c.branch == TICKET]
    places = {branch: place for place, branch in enumerate(data.branches())}
    with styled(data.settings):
        fig, ax = new_figure(data.settings)
        drawn = []
        for curve in data.curves:
            steps, means, low, high = _curve_band(data, curve)
            if curve.branch == TICKET:
                where = ticket_levels.index(curve.level) / max(1, len(ticket_levels) - 1)
                color, line = colormap(where * 0.9), "-"
                label = f"ticket, {weights_text(curve.percent)}% of weights"
            else:
                color, _, line = branch_style(curve.branch, places.get(curve.branch, 1))
                label = f"{curve.branch}, {weights_text(curve.percent)}% of weights"
            ax.plot(steps, means, color=color, linestyle=line, label=label)
            if len(curve.series) > 1:
                ax.fill_between(steps, low, high, color=color, alpha=0.15, linewidth=0)
            drawn.append((steps, means))
        ax.set_ylim(*zoom_range(drawn))
        ax.set_xlabel("training iteration")
        ax.set_ylabel("test accuracy (%, zoomed)")
        title = "test accuracy during training"
        ax.set_title(f"{data.title}: {title}")
        legend_below(ax, interval_note(data), len(data.curves))
        return save(fig, stem, data.settings, f"{data.title}: {title}", data.caption)


def mask_similarity(data: ReportData, stem: Path) -> list[Path]:
    """Heatmap of the ticket masks of every (replicate, level) pair: IoU below the
    diagonal, the IoU two random masks of the same densities would have above it."""
    keys, matrix = iou_matrix(data.masks)
    size = min(14.0, max(data.settings.width * 0.85, 0.5 * len(keys) + 2.5))
    title = "ticket-mask overlap (IoU of kept weights)"
    with styled(data.settings):
        fig, ax = new_figure(data.settings, height=size)
        if len(keys) < 2:  # nothing to compare: say why instead of an empty square
            ax.text(0.5, 0.5, f"no ticket {MASK_ARTIFACT} artifacts found" if not keys else
                    "one ticket mask (one replicate, one level): nothing to compare it with;\n"
                    "more replicates or pruned levels give a heatmap", ha="center",
                    va="center", wrap=True)
            ax.set_axis_off()
            ax.set_title(f"{data.title}: {title}")
            return save(fig, stem, data.settings, f"{data.title}: {title}", data.caption)
        densities = {key: data.masks[key].density() for key in keys}
        shown = [[matrix[i][j] if j <= i else chance_iou(densities[a], densities[b])
                  for j, b in enumerate(keys)] for i, a in enumerate(keys)]
        image = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=1.0)
        labels = [f"r{replicate} L{level} ({weights_text(data.cells[TICKET][level].percent)}%)"
                  for replicate, level in keys]
        ticks = list(range(0, len(keys), max(1, len(keys) // 30)))
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize="small")
        ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize="small")
        ax.grid(False)
        numbered = len(keys) <= NUMBERED_MASKS
        if numbered:
            for i, row in enumerate(shown):
                for j, value in enumerate(row):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                            color="black" if value > 0.6 else "white",
                            fontstyle="italic" if j > i else "normal")
        ax.set_xlabel("ticket mask (replicate r, level L, weights remaining)")
        ax.set_ylabel("ticket mask (replicate r, level L, weights remaining)")
        above = "above (italic)" if numbered else "above"
        ax.set_title(f"{data.title}: {title}\nbelow the diagonal: IoU; {above}: chance IoU of "
                     "random masks of the same densities"
                     + ("" if numbered else f"\n(colours only: numbers up to {NUMBERED_MASKS} "
                                             "masks)"))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="IoU (intersection / union)")
        return save(fig, stem, data.settings, f"{data.title}: {title}", data.caption)



def rewind_instability(data: ReportData, stem: Path) -> list[Path]:
    """A searched rewind's instability curves (Frankle et al. 2020, Figure 3): the error
    barrier against the candidate rewind point, per replicate, the threshold and the
    chosen point (none: no file)."""
    curves = {r: choice for r, choice in data.rewind_search.items() if choice.get("curve")}
    if not curves:
        return []
    with styled(data.settings):
        fig, ax = new_figure(data.settings)
        for index, (replicate, choice) in enumerate(sorted(curves.items())):
            points = [(row["iteration"], 100 * row["barrier"]) for row in choice["curve"]]
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o",
                    color=f"C{index % 10}", label=f"replicate {replicate}")
            chosen = [y for x, y in points if x == choice["chosen"]]
            if chosen:
                ax.plot([choice["chosen"]], chosen, marker="*", markersize=14,
                        color=f"C{index % 10}", linestyle="none")
        threshold = next(iter(curves.values())).get("threshold")
        if threshold is not None:
            ax.axhline(100 * threshold, color="0.4", linestyle="--", linewidth=1,
                       label=f"threshold ({100 * threshold:g}%)")
        ax.set_xlabel("rewind point (iteration)")
        ax.set_ylabel("error barrier (percentage points)")
        ax.set_title(f"{data.title}: instability against the rewind point")
        legend_below(ax, "two copies per point, different data orders; star: the chosen point "
                     "(candidates after it not measured)", len(curves) + 1)
        return save(fig, stem, data.settings, f"{data.title}: instability against the rewind "
                    "point", data.caption)
