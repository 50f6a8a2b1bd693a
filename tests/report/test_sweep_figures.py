"""A sweep's figure and group table: the sweep's name, offsets, accuracy bounds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from lth_suite.analysis.replicate_tests import interval
from lth_suite.report import sweep_groups
from lth_suite.report.sweep_groups import Group, group_figure, group_table
from lth_suite.spec.report import Report


def point(accuracy: dict[int, float]) -> SimpleNamespace:
    return SimpleNamespace(accuracy=accuracy, density={0: 1.0, 1: 0.8}, controls={})


# Two groups at the same densities; three seeds near 100% with a wide spread, whose
# t interval passes 100%.
GROUPS = [Group("lr=0.1", [point({0: a, 1: a}) for a in (0.999, 0.94, 0.999)]),
          Group("lr=0.2", [point({0: a, 1: a}) for a in (0.90, 0.91, 0.92)])]


def test_an_accuracy_interval_is_cut_at_100_and_marked():
    raw = interval([99.9, 94.0, 99.9])
    assert raw.high > 100 and not raw.clipped
    cut = interval([99.9, 94.0, 99.9], bounds=(0, 100))
    assert cut.high == 100 and cut.low == raw.low and cut.clipped
    inside = interval([90.0, 91.0, 92.0], bounds=(0, 100))
    assert inside == interval([90.0, 91.0, 92.0]) and not inside.clipped
    table = group_table("abc", GROUPS, Report())
    row = next(line for line in table.splitlines() if line.startswith("| `lr=0.1`"))
    assert "100.00]‡" in row and "‡: the interval passed 100%" in table


def test_the_figure_is_titled_with_the_sweep_and_its_lines_sit_apart(tmp_path, monkeypatch):
    drawn = {}
    real = sweep_groups.save

    def keep(fig, stem, settings, title, caption):
        drawn["ax"] = fig.axes[0]
        return real(fig, stem, settings, title, caption)

    monkeypatch.setattr(sweep_groups, "save", keep)
    files = group_figure("my-grid", "abc", GROUPS, Report(formats=["png"]), tmp_path / "s",
                         controls=False)
    assert Image.open(files[0]).info["Title"] == "my-grid: tickets side by side"
    ax = drawn["ax"]
    assert ax.get_title() == "my-grid: tickets side by side"
    first, second = (bars.lines[0].get_xdata() for bars in ax.containers)
    assert all(a != pytest.approx(b) for a, b in zip(first, second))  # bars do not overlap
    tops = [seg[1][1] for coll in ax.collections for seg in coll.get_segments()]
    assert max(tops) <= 100.0
