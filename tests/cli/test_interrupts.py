"""Ctrl-C or SIGTERM at any moment of a run: no run left RUNNING, a real resume command.

The signal is sent for real (``os.kill`` of this process) right after the N-th call into
the MLflow client, so it lands wherever Python is then, as a user's Ctrl-C would: between
creating the parent run and noting it, halfway through logging a level, while ending runs.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.tracking.names import ERROR_TAG, PARENT_TAG


class SignalAfter:
    """Counts calls into ``MlflowClient``; after call ``at`` sends ``signum`` to this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int | None, signum: int):
        self.calls, self.at, self.signum = 0, at, signum
        for name in dir(MlflowClient):
            method = getattr(MlflowClient, name)
            if not name.startswith("_") and callable(method):
                monkeypatch.setattr(MlflowClient, name, self._counted(method))

    def _counted(self, method):
        def call(client, *args, **kwargs):
            result = method(client, *args, **kwargs)
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), self.signum)
            return result
        return call


def run_tiny(tmp_path, tiny, at: int | None = None, signum: int = signal.SIGINT):
    """``lth-suite run`` of ``tiny``, signalled after store call ``at``; result and counter."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny))
    with pytest.MonkeyPatch.context() as patch:
        counter = SignalAfter(patch, at, signum)
        result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", store(tmp_path)])
    mlflow.set_tracking_uri(None)
    return result, counter


def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def runs(tmp_path) -> list:
    if not (tmp_path / "mlflow.db").exists():
        return []
    client = MlflowClient(store(tmp_path))
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


@pytest.fixture
def short(tiny):
    tiny["pruning"]["levels"] = 1
    tiny["analyzers"] = ["mask_similarity"]
    return tiny


def test_calls_counted_in_a_whole_run(tmp_path, short):
    result, counter = run_tiny(tmp_path, short)
    assert result.exit_code == 0, result.output
    assert counter.calls > 20  # the points the next test interrupts at


@pytest.mark.parametrize("at", [1, 2, 3, 4, 5, 6, 9, 14, 20, 28])
def test_an_interrupt_at_any_store_call_leaves_no_run_running(tmp_path, short, at):
    result, _ = run_tiny(tmp_path, short, at, signal.SIGINT if at % 2 else signal.SIGTERM)
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    found = runs(tmp_path)
    assert [r.info.run_name for r in found if r.info.status == "RUNNING"] == []
    parents = [r for r in found if PARENT_TAG not in r.data.tags]
    said = re.search(r"resume with: lth-suite resume (\w+) ", result.stderr)
    if said is None:  # stopped before the parent run existed
        assert "nothing to resume" in result.stderr and parents == []
        return
    assert [p.info.run_id for p in parents] == [said.group(1)]
    assert parents[0].info.status == "KILLED"
    again = CliRunner().invoke(app, ["resume", said.group(1), "--tracking-uri", store(tmp_path)])
    assert again.exit_code == 0, again.output
    parent = MlflowClient(store(tmp_path)).get_run(said.group(1))
    assert parent.info.status == "FINISHED" and ERROR_TAG not in parent.data.tags


class FullDisk:
    """From call ``at`` on, the store refuses writes as a full disk does (reads still work,
    and so does ending runs unless ``stuck``)."""

    WRITES = ("log_batch", "log_artifact", "log_text", "log_dict", "set_tag", "create_run")

    def __init__(self, patch: pytest.MonkeyPatch, at: int, stuck: bool):
        self.calls, self.at = 0, at
        for name in self.WRITES + (("set_terminated",) if stuck else ()):
            patch.setattr(MlflowClient, name, self._failing(getattr(MlflowClient, name)))

    def _failing(self, method):
        def call(client, *args, **kwargs):
            self.calls += 1
            if self.calls >= self.at:
                raise sqlite3.OperationalError("database or disk is full")
            return method(client, *args, **kwargs)
        return call


@pytest.mark.parametrize("at, stuck", [(3, False), (12, False), (12, True)])
def test_a_store_that_stops_accepting_writes_ends_with_one_line(tmp_path, short, at, stuck):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(short))
    with pytest.MonkeyPatch.context() as patch:
        FullDisk(patch, at, stuck)
        result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", store(tmp_path)])
    mlflow.set_tracking_uri(None)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "the tracking store stopped accepting writes" in lines[0]
    assert "database or disk is full" in lines[0] and "Traceback" not in result.output
    running = [r.info.run_name for r in runs(tmp_path) if r.info.status == "RUNNING"]
    if stuck:
        assert running and "stay RUNNING" in lines[0] and "lth-suite resume" in lines[0]
    else:
        assert running == [] and "ended FAILED" in lines[0]
