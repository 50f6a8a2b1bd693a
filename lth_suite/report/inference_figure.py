"""The ``inference`` analyzer's figure: the ticket's test accuracy against the speed-up
each format measured over the masked dense network, one line per format and batch size
(points from dense to sparse), so that "how fast, at what accuracy" reads at a glance."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

from ..tracking.names import TICKET
from .data import ReportData
from .inference_table import TIMED
from .numbers import weights_text
from .style import legend_below, new_figure, save, styled

Series = dict[str, dict[int, float]]  # metric -> level -> value
STYLES = ("-", "--", ":", "-.")


def accuracy_vs_speedup(data: ReportData, stem: Path, metrics: Series) -> list[Path]:
    """Test accuracy at early stop against measured speed-up, per format and batch size."""
    tickets = data.cells[TICKET]
    accuracy = {level: 100 * mean(cell.accuracy) for level, cell in tickets.items()}
    lines = {}
    for key in sorted(metrics):
        found = TIMED.match(key.replace("/speedup", "/latency_ms"))
        if not key.endswith("/speedup") or found is None or found.group("format") == "dense":
            continue
        points = sorted((level, value) for level, value in metrics[key].items()
                        if level in accuracy)
        if points:
            lines[(found.group("format"), int(found.group("batch")))] = points
    if not lines:
        return []
    with styled(data.settings):
        fig, ax = new_figure(data.settings)
        formats = sorted({name for name, _ in lines})
        batches = sorted({batch for _, batch in lines})
        for (name, batch), points in sorted(lines.items()):
            # A color per format, a line style per batch size.
            ax.plot([s for _, s in points], [accuracy[level] for level, _ in points],
                    marker="o", color=f"C{formats.index(name) % 10}",
                    linestyle=STYLES[batches.index(batch) % len(STYLES)],
                    label=f"{name}, batch {batch}")
        sparsest = max(accuracy, key=lambda level: -tickets[level].percent)
        ax.annotate(f"sparsest ticket: {weights_text(tickets[sparsest].percent)}% of weights",
                    xy=(0.01, 0.01), xycoords="axes fraction", fontsize="x-small")
        ax.axvline(1.0, color="0.4", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("speed-up over the masked dense network (log scale; right of 1: faster)")
        ax.set_ylabel("ticket test accuracy at early stop (%)")
        ax.set_title(f"{data.title}: accuracy against measured speed-up")
        legend_below(ax, "format, batch size (a point per level, dense to sparse)", len(lines))
        return save(fig, stem, data.settings, f"{data.title}: accuracy against speed-up",
                    data.caption)
