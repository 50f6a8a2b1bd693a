"""One look for every figure of a report: colors, legends, number formats, files.

Numbers are formatted by ``numbers``, shared with ``summary.md`` and the terminal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402

from ..errors import LthError  # noqa: E402
from ..plugins.manager import load_plugins  # noqa: E402
from ..plugins.registry import Registry, describe  # noqa: E402
from ..spec.report import Report  # noqa: E402
from ..tracking.names import TICKET  # noqa: E402

TICKET_STYLE = ("#1f77b4", "o", "-")
# The controls' looks, in the order of a report's controls (the spec's, grouped by what
# they vary): a control is styled by its place, never by its name.
CONTROL_STYLES = (("#d62728", "s", "--"), ("#2ca02c", "^", ":"), ("#9467bd", "v", "-."),
                  ("#ff7f0e", "D", (0, (3, 1, 1, 1))), ("#8c564b", "P", (0, (5, 2))),
                  ("#e377c2", "X", (0, (1, 1))), ("#7f7f7f", "*", (0, (3, 1, 1, 1, 1, 1))),
                  ("#bcbd22", "h", (0, (5, 1))), ("#17becf", "p", (0, (2, 2))))
# Criteria that choose the whole mask before training (pruning at initialisation).
AT_INIT_CRITERIA = ("snip", "grasp", "synflow")
FONT_SCALE = {"paper": 1.0, "talk": 1.35}
ASPECT = 0.68  # height / width


def experiment_kind(spec: Mapping[str, str]) -> str:
    """``imp`` (iterative pruning with rewinding), ``init`` (pruning at initialisation) or
    ``dst`` (dynamic sparse training at level 0), from the flattened spec of the parent run."""
    criterion = spec.get("pruning.criterion.name", "").strip('"').lower()
    if "sparsity.dynamic.name" in spec:
        return "dst"
    at_init = spec.get("pruning.criterion.at", "").strip('"') == "init"
    return "init" if at_init or criterion in AT_INIT_CRITERIA else "imp"


def rewind_text(spec: Mapping[str, str]) -> str:
    """What the ticket's weights were before retraining: the rewind's own description
    (a plugin's included) with its params filled in from the flattened spec."""
    name = spec.get("rewind.name", "init")
    prefix = "rewind."
    params = {key[len(prefix):]: value for key, value in spec.items()
              if key.startswith(prefix) and key != "rewind.name"}
    try:
        return _registry().get("rewind", name).label(params)
    except LthError:  # its plugin is gone since the run: name it and its params
        return describe(f"rewind {name}", params)


@cache
def _registry() -> Registry:
    """The installed plugins' components, loaded once per process for the legends."""
    return load_plugins(warn=False).registry


def branch_label(branch: str, spec: Mapping[str, str],
                 controls: Mapping[str, str] | None = None) -> str:
    """What a branch means for this experiment, as its legend says; a control by its
    plugin's description (``controls``: name -> description)."""
    kind = experiment_kind(spec)
    criterion = spec.get("pruning.criterion.name", "the criterion")
    if branch == TICKET:
        return {"init": f"ticket: mask chosen at init by {criterion}, original init weights",
                "dst": f"ticket: mask grown by {spec.get('sparsity.dynamic.name', 'DST')} at "
                       f"level 0, then pruned; {rewind_text(spec)}",
                "imp": f"ticket: pruned mask, {rewind_text(spec)}"}[kind]
    description = (controls or {}).get(branch)
    return f"{branch}: {description}" if description else branch


def branch_style(branch: str, index: int) -> tuple[str, str, Any]:
    """Color, marker and line style of a branch: the ticket's, or those of the
    ``index``-th branch of the report (the ticket being the 0th)."""
    if branch == TICKET:
        return TICKET_STYLE
    return CONTROL_STYLES[(max(index, 1) - 1) % len(CONTROL_STYLES)]


@contextmanager
def styled(settings: Report) -> Iterator[None]:
    """Matplotlib settings for the report's style (fonts, lines, grid)."""
    scale = FONT_SCALE[settings.style]
    with plt.rc_context({
        "font.size": 9 * scale, "axes.titlesize": 10 * scale, "axes.labelsize": 9 * scale,
        "legend.fontsize": 7.5 * scale, "xtick.labelsize": 8 * scale,
        "ytick.labelsize": 8 * scale, "lines.linewidth": 1.5 * scale,
        "lines.markersize": 4.5 * scale, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False,
        "pdf.fonttype": 42, "svg.fonttype": "none",  # text stays text in papers
    }):
        yield


def legend_below(ax, title: str, entries: int) -> None:
    """The legend under the axes, so that it never hides a line or an interval bar."""
    ax.legend(title=title, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=2 if entries > 4 else 1, frameon=False)


def new_figure(settings: Report, height: float | None = None):
    """A figure of the report's width and one axes."""
    width = settings.width
    return plt.subplots(figsize=(width, height or width * ASPECT))


def save(fig, stem: Path, settings: Report, title: str, caption: str) -> list[Path]:
    """Write ``fig`` once per format (``stem.png``, ``stem.pdf``, ...), the title and the
    caption (run and spec hash) in each file's metadata; close it."""
    fig.tight_layout()
    written = []
    for fmt in settings.formats:
        path = stem.with_suffix(f".{fmt}")
        about = {"png": {"Title": title, "Description": caption},
                 "pdf": {"Title": title, "Subject": caption},
                 "svg": {"Title": title, "Description": caption}}[fmt]
        fig.savefig(path, dpi=settings.dpi, metadata=about, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written
