"""What a report shows, read back from the MLflow store.

Everything comes from the stored runs (the children's summary metrics, histories and
``mask.npz`` artifacts), so a report can be written for any experiment in a store, long
after it ran. This module only gathers; ``summary`` and ``figures`` draw from what it
returns and ``writer`` puts the files in place, so imports flow one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from pydantic import ValidationError

from ..analysis.similarity import iou
from ..errors import LthError
from ..pruning.masks import Mask
from ..spec.report import Report
from ..tracking import RunRecord, StoreReader
from ..tracking.names import (
    BRANCH_PARAM,
    CONTROLS_TAG,
    DENSITY,
    DENSITY_PARAM,
    EARLY_STOP_ACCURACY,
    EARLY_STOP_ITERATION,
    LEVEL_PARAM,
    MASK_ARTIFACT,
    REPLICATE_PARAM,
    SPEC_HASH_TAG,
    SPEC_PARAM_PREFIX,
    TICKET,
    branch_order,
    rewind_search_artifact,
    rewind_search_tag,
)
from ..tracking.stored_weights import load_mask

TEST_ACCURACY = "test_accuracy"  # the history the accuracy-vs-iteration figure draws
EARLY_STOP_TEST = "early_stop_test_"  # the prefix of every test metric at early stop


@dataclass
class Cell:
    """One (branch, level) over replicates: density and the early-stop metrics."""

    level: int
    replicates: list[int] = field(default_factory=list)  # which replicate each value is from
    density: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # test accuracy at early stop, 0..1
    iteration: list[float] = field(default_factory=list)  # early-stop iteration
    # The task's other test metrics at early stop (a language model's perplexity), by name.
    others: dict[str, list[float]] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        """Mean percent of weights remaining."""
        return 100 * mean(self.density)

    def by_replicate(self, values: list[float]) -> dict[int, float]:
        """One of this cell's lists keyed by replicate (to pair branches)."""
        return dict(zip(self.replicates, values))


@dataclass
class Curve:
    """Test accuracy against iteration of one level's ticket, one series per replicate."""

    level: int
    percent: float
    series: list[list[tuple[int, float]]]
    branch: str = TICKET


@dataclass
class ReportData:
    """Everything the figures and the table show."""

    parent: RunRecord
    replicates: int
    levels: list[int]
    cells: dict[str, dict[int, Cell]]  # branch -> level -> cell
    curves: list[Curve]
    masks: dict[tuple[int, int], Mask]  # (replicate, level) -> ticket mask
    settings: Report = field(default_factory=Report)
    last_evaluation: int | None = None  # the iteration of the trainings' last evaluation
    # analyzer -> metric -> level -> value: what each analyzer logged on the parent run
    analyses: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    # replicate -> a searched rewind's choice (chosen, stable, threshold, curve), as logged
    rewind_search: dict[int, dict] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, str]:
        """The parent run's flattened spec (``model.name`` -> ``"mlp"``)."""
        return {k[len(SPEC_PARAM_PREFIX):]: v for k, v in self.parent.params.items()
                if k.startswith(SPEC_PARAM_PREFIX)}

    @property
    def title(self) -> str:
        """The experiment's name, as figures are titled."""
        return self.spec.get("experiment.name", self.parent.name)

    @property
    def caption(self) -> str:
        """Which run and spec the figures come from: their metadata and summary line."""
        return (f"parent run {self.parent.name} ({self.parent.run_id}), spec hash "
                f"{self.parent.tags.get(SPEC_HASH_TAG, '?')}")

    def at_end(self, cell: Cell) -> bool:
        """Whether some replicate of ``cell`` stopped early at the last evaluation."""
        return self.last_evaluation is not None and any(
            it >= self.last_evaluation for it in cell.iteration)

    @property
    def controls(self) -> dict[str, str]:
        """The experiment's controls, grouped by what they vary, each with its plugin's
        description (what the parent run's tag recorded)."""
        return control_order(self.parent)

    def branches(self) -> list[str]:
        """Branches present: the ticket, the controls grouped by what they vary."""
        order = list(self.controls)
        return sorted(self.cells, key=lambda branch: branch_order(branch, order))


@dataclass
class ReportResult:
    """Where a report went."""

    parent_run_id: str
    run_name: str
    folder: Path
    files: list[Path]
    statistics: list = field(default_factory=list)  # statistics.LevelStatistics per level
    data: ReportData | None = None
    status: str = "FINISHED"  # the parent run's: RUNNING, FAILED or KILLED means partial


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


def logged_settings(parent: RunRecord) -> Report:
    """The ``report:`` section of the spec logged on the parent run; the defaults for a
    run logged before a setting existed."""
    prefix = f"{SPEC_PARAM_PREFIX}report."
    values = {}
    for key, text in parent.params.items():
        if key.startswith(prefix) and "." not in key[len(prefix):]:
            try:
                values[key[len(prefix):]] = json.loads(text)
            except ValueError:
                values[key[len(prefix):]] = text
    try:
        return Report(**values)
    except (ValidationError, TypeError):
        return Report()


def _int_param(run: RunRecord, key: str) -> int | None:
    try:
        return int(run.params[key])
    except (KeyError, ValueError):
        return None


def collect(reader: StoreReader, parent: RunRecord,
            curve_levels: list[int] | None = None, settings: Report | None = None) -> ReportData:
    """Read the finished trainings of one experiment."""
    settings = settings or logged_settings(parent)
    cells: dict[str, dict[int, Cell]] = {}
    tickets: dict[tuple[int, int], RunRecord] = {}
    trainings: dict[tuple[int, int, str], RunRecord] = {}
    replicates: set[int] = set()
    seen: set[tuple[int, int, str]] = set()
    for child in reader.children(parent.run_id):  # newest first
        level, replicate = _int_param(child, LEVEL_PARAM), _int_param(child, REPLICATE_PARAM)
        branch = child.params.get(BRANCH_PARAM)
        metrics = child.metrics
        if (level is None or replicate is None or not branch or child.status != "FINISHED"
                or EARLY_STOP_ACCURACY not in metrics
                or (replicate, level, branch) in seen):
            continue  # not one of ours, a training that did not finish, or an older copy
        seen.add((replicate, level, branch))
        density = metrics.get(DENSITY, float(child.params.get(DENSITY_PARAM, "nan")))
        cell = cells.setdefault(branch, {}).setdefault(level, Cell(level))
        cell.replicates.append(replicate)
        cell.density.append(density)
        cell.accuracy.append(metrics[EARLY_STOP_ACCURACY])
        cell.iteration.append(metrics.get(EARLY_STOP_ITERATION, float("nan")))
        for key, value in metrics.items():
            if key.startswith(EARLY_STOP_TEST) and key != EARLY_STOP_ACCURACY:
                cell.others.setdefault(key[len(EARLY_STOP_TEST):], []).append(value)
        replicates.add(replicate)
        trainings[(replicate, level, branch)] = child
        if branch == TICKET:
            tickets[(replicate, level)] = child
    if TICKET not in cells:
        raise LthError(f"run {parent.run_id} ({parent.name}) has no finished ticket training "
                       "to report")
    levels = sorted(cells[TICKET])
    if curve_levels is None:
        curve_levels = settings.levels or default_levels(levels)
    missing = [level for level in curve_levels if level not in cells[TICKET]]
    if missing:
        raise LthError(f"report levels: level {missing[0]} has no finished ticket in {parent.name} "
                       f"(levels: {', '.join(map(str, levels))})")
    curves = []
    for level, branch in _curve_keys(curve_levels, settings, cells, list(control_order(parent))):
        runs = [run for (_, lv, br), run in sorted(trainings.items()) if (lv, br) == (level, branch)]
        curves.append(Curve(level, cells[TICKET][level].percent,
                            [reader.history(run.run_id, TEST_ACCURACY) for run in runs], branch))
    last = max((step for curve in curves for series in curve.series for step, _ in series),
               default=None)
    masks = {}
    for key, run in sorted(tickets.items()):
        payload = reader.artifact_bytes(run.run_id, MASK_ARTIFACT)
        if payload is not None:
            masks[key] = load_mask(payload, run.run_id, MASK_ARTIFACT)
    return ReportData(parent, len(replicates), levels, cells, curves, masks, settings, last,
                      _analyses(reader, parent), rewind_choices(reader, parent, replicates))


def rewind_choices(reader: StoreReader, parent: RunRecord,
                   replicates: set[int]) -> dict[int, dict]:
    """Each replicate's rewind point as a searched rewind (``auto``) chose it, with its
    instability curve; none for other rewinds."""
    choices = {}
    for replicate in sorted(replicates):
        if rewind_search_tag(replicate) not in parent.tags:
            continue
        payload = reader.artifact_bytes(parent.run_id, rewind_search_artifact(replicate))
        try:
            choices[replicate] = json.loads(payload) if payload is not None else {}
        except ValueError:
            choices[replicate] = {}
        choices[replicate]["chosen"] = int(parent.tags[rewind_search_tag(replicate)])
    return choices


def _analyses(reader: StoreReader, parent: RunRecord) -> dict[str, dict[str, dict[int, float]]]:
    """Every metric the spec's analyzers logged on the parent run, by level."""
    try:
        names = [entry["name"] for entry in json.loads(
            parent.params.get(f"{SPEC_PARAM_PREFIX}analyzers", "[]"))]
    except (ValueError, TypeError, KeyError):
        names = []
    found: dict[str, dict[str, dict[int, float]]] = {}
    for name in dict.fromkeys(names):
        keys = sorted(key for key in parent.metrics if key.startswith(f"{name}/"))
        if keys:
            found[name] = {key[len(name) + 1:]: dict(reader.history(parent.run_id, key))
                           for key in keys}
    return found


def control_groups(parent: RunRecord) -> dict[str, dict[str, str]]:
    """What they vary (``mask``, ``weights``, ``""``) -> control name -> description, in
    the spec's order: what the parent run's tag recorded (nothing for older runs)."""
    try:
        recorded = json.loads(parent.tags.get(CONTROLS_TAG, "[]"))
    except ValueError:
        recorded = []
    groups: dict[str, dict[str, str]] = {}
    for name, description, varies in recorded:
        groups.setdefault(str(varies), {})[str(name)] = str(description)
    return groups


def control_order(parent: RunRecord) -> dict[str, str]:
    """Control name -> description, those that vary the same thing (the mask, the weights)
    together, in the spec's order otherwise."""
    return {name: text for group in control_groups(parent).values() for name, text in group.items()}


def _curve_keys(curve_levels: list[int], settings: Report,
                cells: dict[str, dict[int, Cell]], order: list[str]) -> list[tuple[int, str]]:
    """(level, branch) of each accuracy-vs-iteration curve: the ticket at every drawn level,
    the controls at the control levels (default: the sparsest drawn level)."""
    pruned = [level for level in curve_levels if level > 0]
    chosen = settings.control_levels if settings.control_levels is not None else pruned[-1:]
    keys = [(level, TICKET) for level in curve_levels]
    for branch in sorted(cells, key=lambda b: branch_order(b, order)):
        if branch != TICKET:
            keys += [(level, branch) for level in chosen if level in cells[branch]]
    return keys


def iou_matrix(masks: dict[tuple[int, int], Mask],
               ) -> tuple[list[tuple[int, int]], list[list[float]]]:
    """Pairwise IoU of the pruned levels' ticket masks, ordered by replicate then level."""
    keys = sorted(key for key in masks if key[1] > 0) or sorted(masks)
    matrix = [[1.0 if a == b else iou(masks[a], masks[b]) for b in keys] for a in keys]
    return keys, matrix
