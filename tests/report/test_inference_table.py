"""The "what this ticket buys here" table from the inference metrics: rows, the fastest
format, the smallest one, and where each format starts to pay."""

from __future__ import annotations

from lth_suite.report.inference_table import buys_markdown, buys_rows, where_it_pays


def metrics_of(levels: dict[int, dict[str, float]]) -> dict[str, dict[int, float]]:
    """Metric -> level -> value, with each speed-up as the measurement logs it."""
    series: dict[str, dict[int, float]] = {}
    for level, values in levels.items():
        for key, value in values.items():
            series.setdefault(key, {})[level] = value
            if key.endswith("/latency_ms"):
                dense = values[key.replace(key.split("/")[0], "dense", 1)]
                series.setdefault(key.replace("latency_ms", "speedup"), {})[level] = dense / value
    return series


# csr: slower dense-ish, faster from level 2 at batch 64; never at batch 1. 2-4: wrong at 2.
LEVELS = {
    0: {"dense/b1/latency_ms": 1.0, "csr/b1/latency_ms": 4.0, "dense/b64/latency_ms": 10.0,
        "csr/b64/latency_ms": 40.0, "dense/weight_bytes": 1000.0, "csr/weight_bytes": 1000.0,
        "csr/index_bytes": 1000.0},
    1: {"dense/b1/latency_ms": 1.0, "csr/b1/latency_ms": 2.0, "dense/b64/latency_ms": 10.0,
        "csr/b64/latency_ms": 12.0, "dense/weight_bytes": 1000.0, "csr/weight_bytes": 200.0,
        "csr/index_bytes": 200.0},
    2: {"dense/b1/latency_ms": 1.0, "csr/b1/latency_ms": 1.5, "dense/b64/latency_ms": 10.0,
        "csr/b64/latency_ms": 5.0, "dense/weight_bytes": 1000.0, "csr/weight_bytes": 50.0,
        "csr/index_bytes": 50.0, "2-4/wrong": 1.0, "dense/b64/peak_bytes": 4096.0,
        "csr/b64/peak_bytes": 2048.0},
    3: {"dense/b1/latency_ms": 1.0, "csr/b1/latency_ms": 1.2, "dense/b64/latency_ms": 10.0,
        "csr/b64/latency_ms": 2.0, "dense/weight_bytes": 1000.0, "csr/weight_bytes": 10.0,
        "csr/index_bytes": 10.0},
}
PERCENTS = {0: 100.0, 1: 20.0, 2: 3.5, 3: 1.0}


def test_rows_speedups_fastest_and_smallest():
    rows = buys_rows(metrics_of(LEVELS), PERCENTS, {0: 98.0})
    assert [(r.level, r.batch) for r in rows] == [(lv, b) for lv in range(4) for b in (1, 64)]
    by = {(r.level, r.batch): r for r in rows}
    assert by[(2, 64)].speedups["csr"] == 2.0 and by[(2, 64)].best == "csr"
    assert by[(2, 1)].best == "dense"
    assert by[(0, 1)].smallest == ("dense", 1000.0) and by[(3, 1)].smallest == ("csr", 20.0)
    assert by[(2, 1)].wrong == ["2-4"] and by[(2, 1)].speedups["2-4"] is None
    assert by[(0, 1)].accuracy == 98.0 and by[(1, 1)].accuracy is None


def test_where_each_format_starts_to_pay():
    lines = where_it_pays(buys_rows(metrics_of(LEVELS), PERCENTS))
    assert "batch 64: `csr` pays (1.2x or more) from 3.5% of weights remaining (2.00x there)" \
        in lines
    assert any(line.startswith("batch 1: `csr` never pays") for line in lines)
    assert any(line.startswith("batch 1: `2-4` never pays") for line in lines)


def test_markdown_marks_a_wrong_format_and_names_the_machine():
    text = "\n".join(buys_markdown(buys_rows(metrics_of(LEVELS), PERCENTS), "a test CPU"))
    assert "## What this ticket buys here" in text and "a test CPU" in text
    assert "| 2 | 3.5 | – | 64 | 10.000 | wrong | 2.00x | csr |" in text
    assert "| 4.0 / 2.0 |" in text  # a forward's peak, dense then the best format's
    assert buys_markdown([], "x") == []
