"""The report's statistics across replicates: per level and branch an interval of the
mean, and per level and control a paired comparison with the ticket.

Computed from ``ReportData`` by ``analysis.replicate_tests`` (scipy); ``summary`` prints them,
``writer`` logs them on the parent run at ``step = level`` and the CLI shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.replicate_tests import Comparison, Interval, format_p, interval, paired
from ..tracking.names import (
    EARLY_STOP_ACCURACY,
    EARLY_STOP_ITERATION,
    TICKET,
    comparison_metric,
    interval_metric,
)
from .data import Cell, ReportData


@dataclass
class LevelStatistics:
    """One level: intervals per branch and the ticket's comparison with each control."""

    level: int
    percent: float  # weights remaining (%)
    accuracy: dict[str, Interval]  # branch -> test accuracy at early stop, in %
    iteration: dict[str, Interval]  # branch -> early-stop iteration
    comparisons: list[Comparison]  # ticket minus control, accuracy in percentage points


ACCURACY_BOUNDS = (0.0, 100.0)  # accuracy in %: an interval never claims more
CLIP_MARK = "‡"  # after an interval cut at 0 or 100%
CLIP_NOTE = f"{CLIP_MARK}: the interval passed 100% (or 0%) and is cut there"


def _interval(values: list[float], data: ReportData,
              bounds: tuple[float, float] | None = None) -> Interval | None:
    return interval(values, data.settings.confidence, data.settings.interval, bounds)


def level_statistics(data: ReportData) -> list[LevelStatistics]:
    """Intervals and paired comparisons at every level of the experiment."""
    found = []
    for level in data.levels:
        cells: dict[str, Cell] = {b: data.cells[b][level] for b in data.branches()
                                  if level in data.cells[b]}
        accuracy, iteration = {}, {}
        for branch, cell in cells.items():
            acc = _interval([100 * a for a in cell.accuracy], data, ACCURACY_BOUNDS)
            its = _interval(cell.iteration, data)
            if acc is not None:
                accuracy[branch] = acc
            if its is not None:
                iteration[branch] = its
        ticket = cells[TICKET].by_replicate(cells[TICKET].accuracy)
        comparisons = []
        for branch, cell in cells.items():
            if branch == TICKET:
                continue
            control = cell.by_replicate(cell.accuracy)
            shared = sorted(set(ticket) & set(control))
            compared = paired([100 * ticket[r] for r in shared],
                              [100 * control[r] for r in shared], branch, data.settings.test)
            if compared is not None:
                comparisons.append(compared)
        found.append(LevelStatistics(level, cells[TICKET].percent, accuracy, iteration,
                                     comparisons))
    return found


def statistics_metrics(level: LevelStatistics) -> dict[str, float]:
    """What is logged on the parent run at ``step = level``: standard deviations and
    interval bounds (fractions, as the level summary's accuracies), and each comparison."""
    metrics: dict[str, float] = {}
    for key, intervals, scale in ((EARLY_STOP_ACCURACY, level.accuracy, 0.01),
                                  (EARLY_STOP_ITERATION, level.iteration, 1.0)):
        for branch, found in intervals.items():
            for part, value in (("sd", found.sd), ("ci_low", found.low),
                                ("ci_high", found.high)):
                if value is not None:
                    metrics[interval_metric(branch, key, part)] = scale * value
    for compared in level.comparisons:
        metrics[comparison_metric(compared.control, "mean_difference")] = (
            compared.mean_difference / 100)
        for part in ("statistic", "p_value", "effect_size"):
            value = getattr(compared, part)
            if value is not None:
                metrics[comparison_metric(compared.control, part)] = value
    return metrics


def interval_text(found: Interval | None, digits: int) -> str:
    """``97.31 [96.80, 97.82]`` (``[96.80, 100.00]‡`` when cut at a bound); the mean alone
    with one replicate; ``–`` for none."""
    if found is None:
        return "–"
    text = f"{found.mean:.{digits}f}"
    if found.exists:
        text += f" [{found.low:.{digits}f}, {found.high:.{digits}f}]"
    return text + (CLIP_MARK if found.clipped else "")


def accuracy_interval(found: Interval | None) -> str:
    """An accuracy interval (in %) as every table prints it."""
    return interval_text(found, 2)


def comparison_text(compared: Comparison) -> str:
    """``+1.23 pp, p=0.012, d_z=2.1`` (ticket minus control), or why there is no test."""
    text = f"{compared.mean_difference:+.2f} pp"
    if compared.p_value is None:
        return f"{text} (no test: {compared.why_none})"
    effect = "d_z" if compared.test == "t" else "r"
    return f"{text}, p={format_p(compared.p_value)}, {effect}={compared.effect_size:.2f}"


def method_note(data: ReportData) -> str:
    """One sentence saying what the intervals and tests are."""
    settings = data.settings
    if data.replicates < 2:
        return ("One replicate: no interval or test exists; run `experiment.replicates: 3` "
                "or more for intervals and paired comparisons.")
    how = ("Student-t interval of the mean" if settings.interval == "t"
           else "percentile bootstrap interval of the mean (9,999 resamples, seeded)")
    test = ("paired t-test over replicates, effect size Cohen's d_z"
            if settings.test == "t" else
            "Wilcoxon signed-rank test over replicates, effect size the matched-pairs "
            "rank-biserial correlation r")
    return (f"Mean [{100 * settings.confidence:.0f}% {how}] over {data.replicates} "
            f"replicates; ticket vs control: {test}; pp: percentage points of test accuracy "
            f"(ticket minus control); {CLIP_NOTE}.")


def terminal_rows(data: ReportData, levels: list[LevelStatistics],
                  ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the terminal's table: accuracy with its interval per branch, and
    the ticket's comparison with each control, as ``summary.md`` has them but each cell on
    two lines (the mean, then its interval or test), so that three branches and two
    controls fit a 100-column terminal."""
    from .numbers import weights_text

    branches = data.branches()
    controls = [b for b in branches if b != TICKET]
    header = (["level", "weights\nleft (%)"] + [f"{b}\nacc. (%)" for b in branches]
              + [f"ticket −\n{c}" for c in controls])
    rows = []
    for stats in levels:
        found = {c.control: c for c in stats.comparisons}
        rows.append([str(stats.level), weights_text(stats.percent)]
                    + [accuracy_interval(stats.accuracy.get(b)).replace(" [", "\n[", 1)
                       for b in branches]
                    + [_compared(found[c], data.replicates) if c in found else "–"
                       for c in controls])
    return header, rows


def _compared(compared: Comparison, replicates: int) -> str:
    """A terminal cell: the difference alone with one replicate (the caption says there
    is no test), else the difference over the test as ``summary.md`` writes it."""
    if replicates < 2:
        return f"{compared.mean_difference:+.2f} pp"
    return comparison_text(compared).replace(", ", "\n").replace(" (", "\n(", 1)
