"""Statistics across replicates: intervals of a mean and the paired comparison of the
ticket with a control, computed by ``scipy.stats``.

Replicates are few (2 to 10), so every function says when a value does not exist (one
replicate has no interval; identical differences have no test) instead of returning a
number that looks like one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

IntervalMethod = Literal["t", "bootstrap"]
PairedTest = Literal["t", "wilcoxon"]
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # the same report twice draws the same resamples


@dataclass(frozen=True)
class Interval:
    """Mean, standard deviation and a confidence interval of some replicates' values."""

    n: int
    mean: float
    sd: float | None  # None for one value
    low: float | None  # None when no interval exists (one value)
    high: float | None
    confidence: float
    method: IntervalMethod
    clipped: bool = False  # a bound passed the values' possible range and was cut there

    @property
    def exists(self) -> bool:
        """Whether there is an interval (at least two values)."""
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (the ``±`` of a table), None without an interval."""
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def interval(values: Sequence[float], confidence: float = 0.95,
             method: IntervalMethod = "t",
             bounds: tuple[float, float] | None = None) -> Interval | None:
    """The mean of ``values`` with its ``confidence`` interval (NaN values left out);
    None for no value at all. With ``bounds`` (an accuracy's ``(0, 100)``), an interval
    that passes them is cut there and marked ``clipped``: a t interval of few replicates
    near 100% would otherwise claim accuracies above 100%."""
    found = _unbounded(values, confidence, method)
    if found is None or bounds is None or found.low is None or found.high is None:
        return found
    low, high = max(found.low, bounds[0]), min(found.high, bounds[1])
    if (low, high) == (found.low, found.high):
        return found
    return replace(found, low=low, high=high, clipped=True)


def _unbounded(values: Sequence[float], confidence: float,
               method: IntervalMethod) -> Interval | None:
    data = _finite(values)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size == 1:
        return Interval(1, mean, None, None, None, confidence, method)
    sd = float(data.std(ddof=1))
    if sd == 0.0:  # identical values: the interval is the point (scipy would divide by 0)
        return Interval(int(data.size), mean, 0.0, mean, mean, confidence, method)
    if method == "t":
        low, high = stats.t.interval(confidence, data.size - 1, loc=mean,
                                     scale=stats.sem(data))
    else:
        with warnings.catch_warnings():  # few replicates: scipy warns of a degenerate sample
            warnings.simplefilter("ignore")
            found = stats.bootstrap((data,), np.mean, confidence_level=confidence,
                                    n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                    rng=np.random.default_rng(BOOTSTRAP_SEED))
        low, high = found.confidence_interval
    return Interval(int(data.size), mean, sd, float(low), float(high), confidence, method)


@dataclass(frozen=True)
class Comparison:
    """The ticket against one control over the replicates that trained both."""

    control: str
    n: int  # pairs
    mean_difference: float  # ticket minus control
    statistic: float | None
    p_value: float | None
    effect_size: float | None
    test: PairedTest
    why_none: str | None = None  # why there is no test, when there is none

    @property
    def effect_name(self) -> str:
        """What ``effect_size`` measures."""
        return "Cohen's d_z" if self.test == "t" else "rank-biserial r"


def paired(ticket: Sequence[float], control: Sequence[float], name: str,
           test: PairedTest = "t") -> Comparison | None:
    """Paired t-test (effect size: Cohen's d_z, mean difference over its standard
    deviation) or Wilcoxon signed-rank test (effect size: the matched-pairs rank-biserial
    correlation) of ``ticket`` against ``control``, pair i being replicate i of each.
    None without any pair."""
    a, b = np.asarray(ticket, dtype=float), np.asarray(control, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size == 0:
        return None
    mean = float(diff.mean())
    if diff.size < 2:
        return Comparison(name, 1, mean, None, None, None, test, "one replicate")
    if float(np.ptp(diff)) == 0.0:
        return Comparison(name, int(diff.size), mean, None, None, None, test,
                          "the same difference in every replicate")
    if test == "t":
        result = stats.ttest_rel(a[keep], b[keep])
        effect = mean / float(diff.std(ddof=1))
        return Comparison(name, int(diff.size), mean, float(result.statistic),
                          float(result.pvalue), effect, test)
    nonzero = diff[diff != 0]
    result = stats.wilcoxon(a[keep], b[keep])
    ranks = stats.rankdata(np.abs(nonzero))
    effect = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    return Comparison(name, int(diff.size), mean, float(result.statistic),
                      float(result.pvalue), effect, test)


def format_p(p: float | None) -> str:
    """A p-value as papers print it: ``0.012``, ``<0.001``, ``–`` for none."""
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"
