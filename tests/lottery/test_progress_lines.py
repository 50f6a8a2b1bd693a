"""Progress in a log (stderr not a terminal): lines with rate and ETA, never empty lines."""

from __future__ import annotations

import io
import re

from rich.console import Console

from lth_suite.lottery.progress import ConsoleProgress, _eta


def test_a_log_gets_a_line_per_period_with_iteration_rate_and_eta():
    out = io.StringIO()
    progress = ConsoleProgress(4, Console(file=out, force_terminal=False, width=300),
                               line_every=0)
    tick = progress.begin("r0-level0-ticket", 0, 100)
    tick(50)
    tick(99)
    progress.end("r0-level0-ticket", {"density": 1.0, "early_stop_test_accuracy": 0.9,
                                      "early_stop_iteration": 50, "final_test_accuracy": 0.8})
    lines = out.getvalue().splitlines()
    assert all(line.strip() for line in lines)  # no empty lines from a bar
    assert len(lines) == 3
    assert re.fullmatch(r"\[1/4\] r0-level0-ticket: iteration 50/100, [\d,.]+ it/s, "
                        r"experiment ETA \d+m\d\ds", lines[0])
    assert lines[1].startswith("[1/4] r0-level0-ticket: iteration 99/100")
    assert lines[2].startswith("[1/4] r0-level0-ticket: density 1.000")


def test_a_language_model_line_quotes_its_perplexities_first():
    out = io.StringIO()
    progress = ConsoleProgress(1, Console(file=out, force_terminal=False, width=300))
    progress.begin("r0-level1-ticket", 0, 10)
    progress.end("r0-level1-ticket", {
        "density": 0.447, "early_stop_test_accuracy": 0.46, "early_stop_iteration": 10,
        "final_test_accuracy": 0.45, "early_stop_val_perplexity": 5.4861,
        "early_stop_test_perplexity": 7.2104})
    assert out.getvalue().splitlines()[-1] == (
        "[1/1] r0-level1-ticket: density 0.447, val perplexity 5.486, test perplexity 7.210 "
        "at early stop (it 10), token accuracy 0.4600")


def test_a_log_is_quiet_between_periods():
    out = io.StringIO()
    progress = ConsoleProgress(1, Console(file=out, force_terminal=False), line_every=3600)
    tick = progress.begin("r0-level0-ticket", 10, 20)
    for iteration in range(11, 21):
        tick(iteration)
    assert out.getvalue() == ""


def test_eta_is_the_time_left_at_the_rate_so_far():
    assert _eta(60.0, 0.25) == "ETA 3m00s"
    assert _eta(3600.0, 0.5) == "ETA 1h00m"
    assert _eta(5.0, 0.0) == "ETA unknown"
