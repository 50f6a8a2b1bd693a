"""What ``run`` prints when it ends, and ``ui`` on a taken port."""

from __future__ import annotations

import re
import socket

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lth_suite.cli import app, common, experiments

TITLE = "test accuracy at the early-stop iteration"
INTERVALS = "test accuracy at early stop: mean [interval] over replicates"
LINK = (r"open it in the MLflow UI: http://127\.0\.0\.1:5000/#/experiments/(\d+)/runs/"
        r"([0-9a-f]{32})\?workflowType=machine_learning")


def run(spec, uri, monkeypatch, *extra):
    """``lth-suite run`` on a 100-column terminal."""
    narrow = Console(width=100, soft_wrap=True)
    monkeypatch.setattr(common, "out", narrow)
    monkeypatch.setattr(experiments, "out", narrow)
    result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", uri, *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_one_replicate_prints_one_plain_table_and_a_link_to_the_parent(
        tiny, write_spec, tracking_uri, monkeypatch):
    tiny["pruning"]["levels"] = 1
    tiny["tracking"]["log_models"] = "none"
    text = run(write_spec(tiny), tracking_uri, monkeypatch)
    assert text.count(TITLE) == 1 and INTERVALS not in text and "no test" not in text
    assert "one replicate: no interval or test" in text
    header = next(line for line in text.splitlines() if "level" in line and "ticket" in line)
    assert re.search(r"ticket .* reinit .* random_prune", header)  # the report's order
    assert "time: training steps" in text
    parent = re.search(r"parent run ([0-9a-f]{32}) in ", text).group(1)
    link = re.search(LINK, text)
    assert link and link.group(2) == parent, text
    assert max(len(line) for line in text.splitlines() if "│" in line) <= 100


def test_replicates_print_only_the_interval_table_and_the_time_with_workers(
        tiny, write_spec, tracking_uri, monkeypatch):
    tiny["experiment"]["replicates"] = 2
    tiny["pruning"]["levels"] = 1
    tiny["tracking"]["log_models"] = "none"
    tiny["launcher"] = {"name": "local", "workers": 2}
    text = run(write_spec(tiny), tracking_uri, monkeypatch)
    assert text.count(INTERVALS) == 1 and TITLE not in text
    table = text[text.index(INTERVALS):text.index("Mean [")]
    assert max(map(len, table.splitlines())) <= 100  # cells on two lines, no wrapped numbers
    assert re.search(r"\[\d+\.\d\d, \d+\.\d\d\]", table) and "p=" in table
    line = re.search(r"time: ([\d.]+) s in all; 8 trainings on 2 workers took training "
                     r"steps ([\d.]+) s and evaluation ([\d.]+) s, summed over the workers", text)
    assert line, text
    total, steps, evaluation = map(float, line.groups())
    # rounded to 0.1 s: a tiny training's evaluations may print as 0.0 s on a quick machine
    assert total > 0 and steps + evaluation > 0 and evaluation >= 0


def test_ui_on_a_taken_port_fails_naming_it_and_a_free_one(tracking_uri):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["ui", "--port", str(port), "--tracking-uri",
                                          tracking_uri])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith(f"error: port {port} on 127.0.0.1 is in use") and "\n" not in message
    suggested = int(re.search(r"--port (\d+)$", message).group(1))
    assert suggested != port


@pytest.mark.parametrize("host", ["no-such-host.invalid"])
def test_ui_on_an_unknown_host_fails_in_one_line(host, tracking_uri):
    result = CliRunner().invoke(app, ["ui", "--host", host, "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {host} is not an address of this machine")
