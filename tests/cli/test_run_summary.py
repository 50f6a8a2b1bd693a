"""The table `run` prints when no report gives intervals: the task's headline metric."""

from __future__ import annotations

import io

from rich.console import Console

from lth_suite.cli import experiments

ROWS = [{"level": 0.0, "density": 1.0, "ticket/early_stop_test_accuracy": 0.3,
         "ticket/early_stop_test_perplexity": 9.634},
        {"level": 1.0, "density": 0.5, "ticket/early_stop_test_accuracy": 0.4,
         "ticket/early_stop_test_perplexity": 7.5, "reinit/early_stop_test_accuracy": 0.35,
         "reinit/early_stop_test_perplexity": 8.1}]


def printed(monkeypatch, rows, replicates=1) -> str:
    buffer = io.StringIO()
    monkeypatch.setattr(experiments, "out", Console(file=buffer, width=200))
    experiments._print_summary(rows, 3.0, replicates, ["reinit"])
    return " ".join(buffer.getvalue().split())  # the title wraps at the table's width


def test_a_language_model_run_prints_its_test_perplexity(monkeypatch):
    text = printed(monkeypatch, ROWS)
    assert "test perplexity at the early-stop iteration (3.0 s)" in text
    assert "9.63" in text and "8.10" in text and "accuracy" not in text


def test_a_classifier_run_prints_its_test_accuracy(monkeypatch):
    rows = [{k: v for k, v in row.items() if "perplexity" not in k} for row in ROWS]
    text = printed(monkeypatch, rows, replicates=2)
    assert "test accuracy at the early-stop iteration, %, mean of 2 replicates" in text
    assert "40.00" in text and "35.00" in text
