"""Statistics across replicates, legends per kind of experiment, sweep groups: no training."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lth_suite.analysis.replicate_tests import format_p, interval, paired
from lth_suite.report.figures import zoom_range
from lth_suite.report.style import branch_label, experiment_kind
from lth_suite.report.sweep_groups import group_table, readable, sweep_groups, swept_factors
from lth_suite.spec.report import Report


def test_t_interval_is_the_student_t_interval_of_the_mean():
    values = [97.1, 97.6, 96.9, 97.4]
    found = interval(values, 0.95, "t")
    half = scipy_stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / math.sqrt(4)
    assert found.mean == pytest.approx(np.mean(values))
    assert (found.low, found.high) == pytest.approx((found.mean - half, found.mean + half))
    assert found.half_width == pytest.approx(half)
    wider = interval(values, 0.99, "t")
    assert wider.low < found.low and wider.high > found.high


def test_one_replicate_has_no_interval_and_identical_ones_a_point():
    single = interval([97.0], 0.95, "t")
    assert single.mean == 97.0 and not single.exists and single.sd is None
    same = interval([97.0, 97.0, 97.0], 0.95, "bootstrap")
    assert (same.low, same.high, same.sd) == (97.0, 97.0, 0.0)
    assert interval([float("nan")], 0.95, "t") is None


def test_bootstrap_interval_is_seeded_and_inside_the_values():
    values = [96.0, 97.5, 97.0, 98.2, 96.4]
    first, again = interval(values, 0.95, "bootstrap"), interval(values, 0.95, "bootstrap")
    assert first == again
    assert min(values) <= first.low < first.mean < first.high <= max(values)


def test_paired_t_test_and_cohens_dz():
    ticket, control = [97.0, 97.5, 98.0, 97.2], [95.0, 96.1, 96.0, 96.4]
    found = paired(ticket, control, "reinit", "t")
    diff = np.subtract(ticket, control)
    assert found.mean_difference == pytest.approx(diff.mean())
    assert found.p_value == pytest.approx(scipy_stats.ttest_rel(ticket, control).pvalue)
    assert found.effect_size == pytest.approx(diff.mean() / diff.std(ddof=1))
    swapped = paired(control, ticket, "reinit", "t")
    assert swapped.effect_size == pytest.approx(-found.effect_size)


def test_wilcoxon_and_rank_biserial_correlation():
    better = paired([3.0, 4.0, 5.0, 6.0, 7.0], [1.0, 1.0, 1.0, 1.0, 1.0], "random_prune",
                    "wilcoxon")
    assert better.effect_size == 1.0 and better.effect_name == "rank-biserial r"
    assert better.p_value == pytest.approx(
        scipy_stats.wilcoxon([2.0, 3.0, 4.0, 5.0, 6.0]).pvalue)
    mixed = paired([1.0, 5.0, 2.0, 8.0], [2.0, 1.0, 4.0, 1.0], "x", "wilcoxon")
    assert -1 < mixed.effect_size < 1


def test_no_test_without_two_different_pairs():
    one = paired([97.0], [95.0], "reinit")
    assert one.p_value is None and one.why_none == "one replicate" and one.mean_difference == 2
    flat = paired([97.0, 96.0], [95.0, 94.0], "reinit")
    assert flat.p_value is None and "same difference" in flat.why_none
    assert format_p(None) == "–" and format_p(0.0004) == "<0.001" and format_p(0.0123) == "0.012"


def test_legends_follow_the_kind_of_experiment():
    imp = {"pruning.criterion.name": "magnitude", "rewind.name": "init"}
    assert experiment_kind(imp) == "imp"
    assert "rewound to their initialisation" in branch_label("ticket", imp)
    late = {**imp, "rewind.name": "step", "rewind.iteration": "500it"}
    assert branch_label("ticket", late) == "ticket: pruned mask, weights rewound to iteration 500it"
    assert "fine-tuned" in branch_label("ticket", {**imp, "rewind.name": "finetune"})
    synflow = {"pruning.criterion.name": "synflow", "rewind.name": "init"}
    assert experiment_kind(synflow) == "init"
    assert branch_label("ticket", synflow) == ("ticket: mask chosen at init by synflow, "
                                               "original init weights")
    assert "rewound" not in branch_label("ticket", synflow)
    rigl = {**imp, "sparsity.dynamic.name": "rigl", "sparsity.density": "0.2"}
    assert experiment_kind(rigl) == "dst"
    assert branch_label("ticket", rigl).startswith("ticket: mask grown by rigl at level 0")


def test_zoom_keeps_curves_above_90_percent_apart():
    curves = [([0, 100, 200, 1000], [10.0, 95.0, 97.0, 98.0]),
              ([0, 100, 200, 1000], [12.0, 94.0, 96.5, 97.5])]
    low, high = zoom_range(curves)
    assert 90 < low < 94 and 98 < high <= 100


def point(index, overrides, accuracy):
    return SimpleNamespace(index=index, overrides=overrides,
                           accuracy={0: accuracy, 1: accuracy + 0.01},
                           density={0: 1.0, 1: 0.8}, controls={})


def test_sweep_points_group_by_factor_and_average_over_seeds():
    points = [point(0, {"experiment.seed": 0, "rewind": "init"}, 0.90),
              point(1, {"experiment.seed": 1, "rewind": "init"}, 0.92),
              point(2, {"experiment.seed": 0, "rewind": "lr"}, 0.95),
              point(3, {"experiment.seed": 1, "rewind": "lr"}, 0.96)]
    assert swept_factors(points) == ["experiment.seed", "rewind"]
    groups = sweep_groups(points, Report())
    assert [g.label for g in groups] == ["rewind=init", "rewind=lr"]
    assert groups[0].values(1) == pytest.approx([91.0, 93.0])
    table = group_table("abc", groups, Report())
    assert "| `rewind=init` | 2 | 91.00 [" in table and "(80%)" in table
    assert readable("pruning.fraction", {"linear": 0.2}) == "pruning.fraction.linear=0.2"
    assert readable("model.hidden", [300, 100]) == "model.hidden=300,100"


def test_a_plugin_rewind_is_labelled_by_its_own_description(monkeypatch):
    from lth_suite.plugins.registry import Component, NoParams, Registry
    from lth_suite.report import style

    registry = Registry()
    registry.add(Component("rewind", "halfway", print, NoParams,
                           "weights of the dense run at {fraction} of training", "mine"))
    monkeypatch.setattr(style, "_registry", lambda: registry)
    spec = {"pruning.criterion.name": "magnitude", "rewind.name": "halfway",
            "rewind.fraction": "0.5", "rewind.extra": "3"}
    assert branch_label("ticket", spec) == ("ticket: pruned mask, weights of the dense run "
                                            "at 0.5 of training (extra=3)")
    gone = {**spec, "rewind.name": "uninstalled"}  # its plugin was removed since the run
    assert "rewound to their initialisation" not in branch_label("ticket", gone)
    assert branch_label("ticket", gone).endswith("rewind uninstalled (fraction=0.5, extra=3)")


def test_a_description_with_a_stray_brace_is_shown_as_written():
    from lth_suite.plugins.registry import describe

    assert describe("keeps {x} of {", {"x": 1}) == "keeps {x} of { (x=1)"
    assert describe("to iteration {iteration}", {}) == "to iteration <iteration>"
