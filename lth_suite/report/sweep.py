"""The report of a sweep: every point's ticket side by side, read back from MLflow.

``lth-suite report --sweep ID`` writes ``sweep_accuracy_vs_weights`` (test accuracy at
the early-stop iteration against the percent of weights remaining: one line per group of
points that share the swept factors other than the seed, averaged over the seeds with an
interval; see ``sweep_groups``) and ``sweep.md`` (the groups, then one row per point).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TrackingError
from ..spec.sweeps import point_label
from ..tracking import RunRecord, StoreReader, open_reader
from ..tracking.names import (
    DENSITY,
    EARLY_STOP_ACCURACY,
    SWEEP_ID_TAG,
    SWEEP_INDEX_TAG,
    SWEEP_POINT_TAG,
    TICKET,
    branch_metric,
)

ACCURACY = branch_metric(TICKET, EARLY_STOP_ACCURACY)


@dataclass
class PointCurve:
    """One point's parent run and its per-level ticket results."""

    index: int
    label: str
    run: RunRecord
    density: dict[int, float] = field(default_factory=dict)  # level -> fraction kept
    accuracy: dict[int, float] = field(default_factory=dict)  # mean over replicates
    low: dict[int, float] = field(default_factory=dict)  # min over replicates
    high: dict[int, float] = field(default_factory=dict)  # max over replicates
    overrides: dict = field(default_factory=dict)  # the point's spec overrides
    controls: dict[str, dict[int, float]] = field(default_factory=dict)  # branch -> level -> mean


@dataclass
class SweepReport:
    """What ``sweep_report`` wrote."""

    sweep_id: str
    folder: Path
    files: list[Path]
    points: list[PointCurve]


def sweep_parents(reader: StoreReader, key: str) -> list[RunRecord]:
    """The parent runs tagged with a sweep id starting with ``key``, newest first."""
    quoted = key.replace("'", "''")
    ids = [e.experiment_id for e in reader.client.search_experiments()]
    found, token = [], None
    while ids:
        page = reader.client.search_runs(ids, f"tags.`{SWEEP_ID_TAG}` LIKE '{quoted}%'",
                                         max_results=1000, page_token=token,
                                         order_by=["attributes.start_time DESC"])
        found += [reader.run(run.info.run_id) for run in page]
        token = page.token
        if not token:
            break
    return [run for run in found if run is not None and run.parent_id is None]


def load_points(reader: StoreReader, key: str) -> tuple[str, list[PointCurve]]:
    """The sweep's full id and, per point, its latest finished parent run (else its
    latest) with the per-level ticket accuracy and density."""
    parents = sweep_parents(reader, key)
    if not parents:
        raise TrackingError(f"no sweep '{key}' in {reader.uri} (the id is printed by "
                            f"lth-suite sweep and tagged {SWEEP_ID_TAG} on its runs)")
    ids = sorted({run.tags[SWEEP_ID_TAG] for run in parents})
    if len(ids) > 1:
        raise TrackingError(f"'{key}' names several sweeps: {', '.join(ids)}")
    chosen: dict[str, RunRecord] = {}
    for run in parents:  # newest first: the first finished one wins, else the newest
        point = run.tags.get(SWEEP_POINT_TAG, "{}")
        if point not in chosen or (run.status == "FINISHED"
                                   and chosen[point].status != "FINISHED"):
            chosen[point] = run
    curves = []
    for point, run in chosen.items():
        overrides = json.loads(point)
        curve = PointCurve(int(run.tags.get(SWEEP_INDEX_TAG, len(curves))),
                           point_label(overrides), run, overrides=overrides)
        curve.density = dict(reader.history(run.run_id, DENSITY))
        curve.accuracy = dict(reader.history(run.run_id, ACCURACY))
        curve.low = dict(reader.history(run.run_id, f"{ACCURACY}_min"))
        curve.high = dict(reader.history(run.run_id, f"{ACCURACY}_max"))
        for control in logged_controls(run):
            curve.controls[control] = dict(reader.history(
                run.run_id, branch_metric(control, EARLY_STOP_ACCURACY)))
        curves.append(curve)
    return ids[0], sorted(curves, key=lambda c: c.index)


def logged_controls(run: RunRecord) -> list[str]:
    """The controls whose level summaries a parent run holds, by name."""
    suffix = "/" + EARLY_STOP_ACCURACY
    return sorted(key[:-len(suffix)] for key in run.metrics
                  if key.endswith(suffix) and key[:-len(suffix)] != TICKET)


def _cell(curve: PointCurve, level: int) -> str:
    if level not in curve.accuracy or level not in curve.density:
        return "-"
    text = f"{100 * curve.accuracy[level]:.2f}"
    if level in curve.low and level in curve.high:
        text += f" ± {50 * (curve.high[level] - curve.low[level]):.2f}"
    return f"{text} ({100 * curve.density[level]:.3g}%)"


def _table(curves: list[PointCurve]) -> str:
    levels = sorted({level for curve in curves for level in curve.accuracy})
    lines = ["## Points", "",
             "Ticket test accuracy (%) at the early-stop iteration per level, with the percent "
             "of weights remaining in parentheses (± half the min-max range over replicates).",
             "", "| point | overrides | parent run | status | "
             + " | ".join(f"level {level}" for level in levels) + " |",
             "| --- | --- | --- | --- |" + " --- |" * len(levels)]
    for curve in curves:
        cells = " | ".join(_cell(curve, level) for level in levels)
        lines.append(f"| {curve.index} | `{curve.label}` | {curve.run.name} "
                     f"(`{curve.run.run_id}`) | {curve.run.status} | {cells} |")
    return "\n".join(lines) + "\n"


def sweep_report(key: str, uri: str, out_dir: Path | None = None,
                 controls: bool = False) -> SweepReport:
    """Write the figure and ``sweep.md`` of the sweep whose id starts with ``key``; with
    ``controls``, the controls' accuracy too (dashed)."""
    from .data import logged_settings
    from .sweep_groups import group_figure, group_table, sweep_groups

    reader = open_reader(uri)
    sweep_id, curves = load_points(reader, key)
    folder = out_dir or Path("reports") / f"sweep-{sweep_id[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    settings = logged_settings(curves[0].run)
    groups = sweep_groups(curves, settings)
    name = reader.client.get_experiment(curves[0].run.experiment_id).name
    figures = group_figure(name, sweep_id, groups, settings,
                           folder / "sweep_accuracy_vs_weights", controls)
    table = folder / "sweep.md"
    table.write_text(group_table(sweep_id, groups, settings) + "\n" + _table(curves),
                     encoding="utf-8")
    return SweepReport(sweep_id, folder, [*figures, table], curves)
