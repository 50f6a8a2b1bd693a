"""Analyzer figures and the mask heatmap: every line visible, words in the legends, no
empty or over-promising heatmap."""

from __future__ import annotations

import pytest
import torch

from lth_suite.pruning.masks import Mask
from lth_suite.report import analyzer_figures, figures
from lth_suite.report.data import Cell, ReportData
from lth_suite.spec.report import Report
from lth_suite.tracking import RunRecord


def report_data(levels: int = 2, masks: dict | None = None) -> ReportData:
    cells = {"ticket": {lv: Cell(lv, [0], [0.8 ** lv], [0.9], [10.0]) for lv in range(levels)}}
    return ReportData(RunRecord("0" * 32, "tiny-abc", "1", "FINISHED", 0), 1,
                      list(range(levels)), cells, [], masks or {},
                      settings=Report(formats=["png"]))


@pytest.fixture
def drawn(monkeypatch):
    """The axes each figure was saved with, by file stem."""
    kept = {}
    for module in (analyzer_figures, figures):
        real = module.save

        def keep(fig, stem, settings, title, caption, real=real):
            kept[stem.name] = fig.axes[0]
            return real(fig, stem, settings, title, caption)

        monkeypatch.setattr(module, "save", keep)
    return kept


def test_equal_layer_densities_stay_apart_with_markers_of_their_own(drawn, tmp_path):
    same = {0: 1.0, 1: 0.8}
    analyzer_figures.layer_density(report_data(), tmp_path / "density",
                                   {"fc1.weight": same, "fc2.weight": same})
    first, second = drawn["density"].get_lines()[:2]
    assert first.get_marker() != second.get_marker()
    assert all(a != pytest.approx(b) for a, b in zip(first.get_xdata(), second.get_xdata()))
    assert list(first.get_ydata()) == list(second.get_ydata()) == [100.0, 80.0]


def test_legends_are_words_not_metric_keys(drawn, tmp_path):
    data = report_data()
    values = {0: 0.5, 1: 0.4}
    analyzer_figures.structure(data, tmp_path / "structure",
                               {"connected_inputs": values, "units_no_in": values})
    analyzer_figures.mask_similarity(data, tmp_path / "similarity",
                                     {"consecutive_iou": values, "consecutive_chance": values})
    for stem in ("structure", "similarity"):
        labels = [text.get_text() for text in drawn[stem].get_legend().get_texts()]
        assert labels and not any("_" in label for label in labels), labels
    similarity = drawn["similarity"].get_lines()
    assert similarity[0].get_linestyle() == "-" and similarity[1].get_linestyle() == "--"


def mask(kept: int) -> Mask:
    return Mask({"w": torch.arange(20) < kept})


def test_one_ticket_mask_explains_its_heatmap_instead_of_an_empty_square(drawn, tmp_path):
    files = figures.mask_similarity(report_data(1, {(0, 0): mask(5)}), tmp_path / "one")
    assert files and not drawn["one"].images  # no 1x1 image
    assert "nothing to compare" in drawn["one"].texts[0].get_text()


def test_a_heatmap_without_numbers_does_not_promise_them(drawn, tmp_path):
    few = {(r, 1): mask(5 + r) for r in range(3)}
    figures.mask_similarity(report_data(2, few), tmp_path / "few")
    assert "italic" in drawn["few"].get_title() and drawn["few"].texts
    many = {(r, 1): mask(2 + r) for r in range(figures.NUMBERED_MASKS + 1)}
    figures.mask_similarity(report_data(2, many), tmp_path / "many")
    assert "italic" not in drawn["many"].get_title() and not drawn["many"].texts
    assert "colours only" in drawn["many"].get_title()
