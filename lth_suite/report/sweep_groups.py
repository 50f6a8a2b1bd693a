"""A sweep's points grouped by the factors it varies, averaged over the seed factor.

The swept factors are the override keys whose values differ between points; points that
share every factor but ``experiment.seed`` form one group, and a group's line is the mean
over its seeds (each seed's value being that point's mean over its replicates) with an
interval across seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.replicate_tests import interval
from ..spec.report import Report
from .level_statistics import ACCURACY_BOUNDS, CLIP_NOTE, accuracy_interval
from .numbers import weights_text
from .style import branch_style, legend_below, new_figure, save, styled

SEED = "experiment.seed"


def readable(key: str, value: Any) -> str:
    """``key=value`` for a legend: nested mappings as dotted keys, lists comma-joined."""
    if isinstance(value, dict):
        return " ".join(readable(f"{key}.{k}", v) for k, v in value.items()) or f"{key}={{}}"
    if isinstance(value, list):
        return f"{key}=" + ",".join(str(v) for v in value)
    return f"{key}={value}"


@dataclass
class Group:
    """Points with the same swept factors apart from the seed."""

    label: str
    points: list = field(default_factory=list)  # sweep.PointCurve

    def values(self, level: int, branch: str | None = None) -> list[float]:
        """Each point's mean accuracy (%) at ``level``: the ticket's, or a control's."""
        found = [p.accuracy.get(level) if branch is None else p.controls.get(branch, {}).get(level)
                 for p in self.points]
        return [100 * v for v in found if v is not None]

    def percent(self, level: int) -> float | None:
        """Mean percent of weights remaining at ``level``."""
        found = [100 * p.density[level] for p in self.points if level in p.density]
        return sum(found) / len(found) if found else None

    def levels(self) -> list[int]:
        """Levels some point of the group reached."""
        return sorted({lv for p in self.points for lv in p.accuracy if lv in p.density})


def swept_factors(points: list) -> list[str]:
    """Override keys whose value is not the same in every point (a missing key counts as
    a value of its own: the base spec's)."""
    keys = list(dict.fromkeys(k for p in points for k in p.overrides))
    return [k for k in keys
            if len({json.dumps(p.overrides.get(k), sort_keys=True) for p in points}) > 1]


def sweep_groups(points: list, settings: Report) -> list[Group]:
    """Points grouped by their swept factors other than the seed, in point order."""
    factors = [k for k in swept_factors(points) if k != SEED]
    groups: dict[str, Group] = {}
    for point in points:
        label = " ".join(readable(k, point.overrides[k]) for k in factors
                         if k in point.overrides) or "base spec"
        groups.setdefault(label, Group(label)).points.append(point)
    return list(groups.values())


def _seeds(group: Group) -> str:
    return f"{len(group.points)} seed{'s' if len(group.points) > 1 else ''}"


SPREAD = 0.15  # the widest x offset between a figure's lines (x factor on the log axis)


def group_figure(name: str, sweep_id: str, groups: list[Group], settings: Report, stem: Path,
                 controls: bool) -> list[Path]:
    """Ticket accuracy against weights remaining, one line per group (controls dashed),
    titled with the sweep's MLflow experiment ``name``; each line sits a little apart on
    the x axis, as the run report's branches do, so no error bar hides another."""
    from .figures import cap_at_100, mean_and_errors, weights_axis_from

    title = "tickets side by side"
    logged = sorted({c for group in groups for p in group.points for c in p.controls})
    branches = [None, *(logged if controls else ())]
    step = min(0.025, SPREAD / max(1, len(groups) * len(branches) - 1))
    with styled(settings):
        fig, ax = new_figure(settings)
        percents: set[float] = set()
        for number, group in enumerate(groups):
            color = f"C{number % 10}"
            for offset, branch in enumerate(branches):
                levels = [lv for lv in group.levels() if group.values(lv, branch)]
                if not levels:
                    continue
                x = [group.percent(lv) for lv in levels]
                shift = 1.0 + step * (number * len(branches) + offset)
                means, errors = mean_and_errors(settings,
                                                [group.values(lv, branch) for lv in levels],
                                                ACCURACY_BOUNDS)
                _, marker, line = branch_style("ticket" if branch is None else branch, offset)
                ax.errorbar([v / shift for v in x], means, yerr=errors, color=color,
                            capsize=3, marker=marker, linestyle=line,
                            label=f"{group.label} ({_seeds(group)})" if branch is None
                            else f"{group.label}: {branch}")
                percents |= {round(v, 6) for v in x}
        if percents:
            weights_axis_from(ax, sorted(percents, reverse=True))
            cap_at_100(ax)
        ax.set_ylabel("test accuracy at early stop (%)")
        ax.set_title(f"{name}: {title}")
        legend_below(ax, f"mean over seeds, {100 * settings.confidence:.0f}% "
                     f"{settings.interval} interval cut at 100%"
                     + ("; dashed/dotted: controls" if controls else ""),
                     len(ax.get_legend_handles_labels()[1]))
        return save(fig, stem, settings, f"{name}: {title}", f"sweep {sweep_id}")


def group_table(sweep_id: str, groups: list[Group], settings: Report) -> str:
    """``sweep.md``'s first table: per group and level, ticket accuracy over seeds."""
    levels = sorted({lv for g in groups for lv in g.levels()})
    lines = [f"# Sweep {sweep_id}", "", "## Groups", "",
             "Ticket test accuracy (%) at the early-stop iteration: mean "
             f"[{100 * settings.confidence:.0f}% {settings.interval} interval] over the seeds "
             "of each group (each seed: its point's mean over replicates), weights remaining "
             f"(%) in parentheses; {CLIP_NOTE}.", "",
             "| group | seeds | " + " | ".join(f"level {lv}" for lv in levels) + " |",
             "| --- | ---: |" + " ---: |" * len(levels)]
    for group in groups:
        cells = []
        for lv in levels:
            found = interval(group.values(lv), settings.confidence, settings.interval,
                             ACCURACY_BOUNDS)
            if found is None:
                cells.append("-")
                continue
            cells.append(f"{accuracy_interval(found)} ({weights_text(group.percent(lv))}%)")
        lines.append(f"| `{group.label}` | {len(group.points)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
