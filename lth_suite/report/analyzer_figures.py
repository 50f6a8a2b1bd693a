"""A figure for each built-in analyzer that ran, from the metrics it logged on the parent
run at ``step = level`` (values averaged over replicates by the analyzer itself)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from matplotlib.ticker import FuncFormatter

from ..tracking.names import TICKET
from .data import ReportData
from .figures import weights_axis
from .inference_figure import accuracy_vs_speedup
from .numbers import weights_text
from .style import legend_below, new_figure, save, styled

Series = dict[str, dict[int, float]]  # line label -> level -> value
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
SPREAD = 0.12  # the widest x offset between lines (a factor on the log axis)
VERSUS = "ticket_vs_"  # mask_similarity's comparisons of the ticket with a control
# What the legends say instead of the metric keys the analyzers log.
WORDS = {
    "connected_inputs": "inputs connected", "connected_channels": "channels connected",
    "connected_units": "hidden units connected", "connected_outputs": "outputs connected",
    "units_no_in": "units without inputs", "inputs_no_out": "inputs without outputs",
    "empty_filters": "conv filters without weights",
    "empty_channels": "conv input channels without weights",
    "consecutive_iou": "level vs previous level", "consecutive_chance": "level vs previous "
    "level, chance", "replicate_iou": "replicate vs replicate", "replicate_chance":
    "replicate vs replicate, chance",
    "barrier": "error barrier (over the endpoints' mean)",
    "barrier_linear": "error barrier (over the line between the endpoints)",
    "endpoint_error": "error at the endpoints",
}


def _lines(data: ReportData, stem: Path, series: Series, ylabel: str, title: str,
           note: str, dashed: Callable[[str], bool] = lambda label: False,
           log_y: bool = False) -> list[Path]:
    """One line per series against the percent of weights remaining (none: no file).

    Series are keyed by metric; the legend words them (``WORDS``). Each line has a marker
    of its own and sits a little apart on the x axis, so that lines with the same values
    (layers pruned at the same rate) stay visible side by side.
    """
    if not any(series.values()):
        return []
    percent = {level: data.cells[TICKET][level].percent for level in data.levels}
    step = min(0.02, SPREAD / max(1, len(series) - 1))
    with styled(data.settings):
        fig, ax = new_figure(data.settings)
        for index, (key, values) in enumerate(series.items()):
            levels = [level for level in sorted(values) if level in percent]
            shift = 1.0 + step * index
            ax.plot([percent[level] / shift for level in levels],
                    [values[level] for level in levels], color=f"C{index % 10}",
                    marker=MARKERS[index % len(MARKERS)], label=words(key),
                    linestyle="--" if dashed(key) else "-")
        weights_axis(ax, data)
        if log_y:  # percents as numbers (51.2), not powers of ten
            ax.set_yscale("log")
            for axis_format in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis_format(FuncFormatter(lambda value, _: weights_text(value)))
        ax.set_ylabel(ylabel)
        ax.set_title(f"{data.title}: {title}")
        legend_below(ax, note, len(series))
        return save(fig, stem, data.settings, f"{data.title}: {title}", data.caption)


def layer_density(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """Per prunable tensor, the percent of its weights the ticket keeps."""
    series = {name: {lv: 100 * v for lv, v in values.items()} for name, values in metrics.items()}
    return _lines(data, stem, series, "weights kept in the layer (%, log scale)",
                  "per-layer density", "prunable tensor (mean over replicates)", log_y=True)


def instability(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """The error barrier along the linear path between two trainings of the ticket."""
    series = {key: {lv: 100 * v for lv, v in metrics[key].items()}
              for key in ("barrier", "barrier_linear", "endpoint_error") if key in metrics}
    return _lines(data, stem, series, "test error (percentage points)",
                  "instability: error barrier between two data orders",
                  "mean over replicates; 0: linearly connected (stable)",
                  dashed=lambda label: label == "endpoint_error")


def init_stats(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """Mean |w| of the weights the ticket keeps and of those it prunes, at initialisation
    (and at the rewind point when it differs)."""
    series = {f"{side}, at {'init' if state == 'init' else 'the rewind point'}":
              metrics[f"{state}_{side}_abs_mean"]
              for state in ("init", "rewind") for side in ("kept", "pruned")
              if f"{state}_{side}_abs_mean" in metrics}
    return _lines(data, stem, series, "mean |w|", "kept vs pruned weights at init",
                  "weights of the final mask of each level",
                  dashed=lambda label: label.startswith("pruned"))


def structure(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """Fractions of inputs, units, channels and outputs still connected, and of units or
    filters left without any weight."""
    order = ("connected_inputs", "connected_channels", "connected_units", "connected_outputs",
             "units_no_in", "inputs_no_out", "empty_filters", "empty_channels")
    series = {key: {lv: 100 * v for lv, v in metrics[key].items()}
              for key in order if key in metrics}
    return _lines(data, stem, series, "fraction (%)", "units and channels connected",
                  "solid: connected input-to-output; dashed: left without weights",
                  dashed=lambda label: not label.startswith("connected"))


def words(key: str) -> str:
    """What a legend says for a metric key: ``WORDS``, or ``ticket_vs_<control>_iou`` as
    "ticket vs <control>"; else the key itself."""
    if key in WORDS:
        return WORDS[key]
    if key.startswith(VERSUS) and key.endswith(("_iou", "_chance")):
        control, _, kind = key[len(VERSUS):].rpartition("_")
        return f"ticket vs {control}" + (", chance" if kind == "chance" else "")
    return key


def mask_similarity(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """IoU of ticket masks (level vs previous level, replicate vs replicate, ticket vs
    each control with a mask of its own) beside the IoU of random masks of the same
    densities."""
    controls = sorted({key[:-len("_iou")] for key in metrics
                       if key.startswith(VERSUS) and key.endswith("_iou")})
    series = {key: {lv: v for lv, v in metrics[key].items()}
              for comparison in ("consecutive", "replicate", *controls)
              for key in (f"{comparison}_iou", f"{comparison}_chance") if key in metrics}
    return _lines(data, stem, series, "IoU of kept weights", "mask overlap against chance",
                  "dashed: chance (random masks, same densities)",
                  dashed=lambda label: label.endswith("chance"))


DRAWERS: dict[str, Callable[[ReportData, Path, Series], list[Path]]] = {
    "layer_density": layer_density, "instability": instability, "init_stats": init_stats,
    "structure": structure, "mask_similarity": mask_similarity,
    "inference": accuracy_vs_speedup}


def analyzer_figures(data: ReportData, folder: Path) -> list[Path]:
    """``analysis_<analyzer>.<format>`` for each built-in analyzer that logged metrics."""
    written = []
    for name, metrics in data.analyses.items():
        if name in DRAWERS and metrics:
            written += DRAWERS[name](data, folder / f"analysis_{name}", metrics)
    return written
