"""Several processes on one store: creating ``mlflow.db`` together, and one resume at a time
(a lease on the parent run), with real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY
from lth_suite.tracking.names import LEASE_TAG

ENV = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": "", "MLFLOW_TRACKING_URI": ""}
TIMEOUT = 240


def python(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lth(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lth_suite", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"a process hung:\n{output}")
    return process.returncode, output


def test_processes_started_together_in_an_empty_folder_all_get_the_store(tmp_path):
    """Each imports first and then waits for the same moment, so that all of them create
    ``mlflow.db`` at once; none may call it half-created."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    code = f"""
        import time
        from pathlib import Path
        from lth_suite.tracking import open_tracker
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        tracker = open_tracker({uri!r})
        tracker.client.search_runs([tracker.client.get_experiment_by_name("Default")
                                    .experiment_id])
        print("ok")
    """
    processes = [python(code, tmp_path) for _ in range(3)]
    time.sleep(8)  # their imports
    go.touch()
    for process in processes:
        code_, output = finish(process)
        assert code_ == 0 and output.strip().endswith("ok"), output
        assert "half-created" not in output


@pytest.fixture
def unfinished(tmp_path, monkeypatch):
    """A parent run whose last level is missing (its runs deleted), ended FAILED."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    data = {**TINY, "pruning": {"levels": 1}, "controls": {"reinit": False, "random_prune": False},
            "training": {**TINY["training"], "duration": "300it", "eval_every": 100},
            "tracking": {"log_models": "none"}}
    parent = run_experiment(build_spec(data, plugins.registry), plugins, uri).parent_run_id
    client = MlflowClient(uri)
    for child in client.search_runs([client.get_run(parent).info.experiment_id],
                                    f"tags.mlflow.parentRunId = '{parent}'"):
        if child.data.params.get("level") == "1":
            client.delete_run(child.info.run_id)
    client.set_terminated(parent, "FAILED")
    return uri, parent


def holder(uri: str, parent: str, cwd: Path) -> subprocess.Popen:
    """A live process holding the parent run's lease, as a running resume does."""
    process = python(f"""
        import time
        from mlflow.tracking import MlflowClient
        from lth_suite.tracking.lease import acquire
        acquire(MlflowClient({uri!r}), {uri!r}, {parent!r})
        print("held", flush=True)
        time.sleep({TIMEOUT})
    """, cwd)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "held", line + process.stdout.read()
    return process


def finished_tickets(uri: str, parent: str) -> list[str]:
    client = MlflowClient(uri)
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent}'")
    return sorted(c.info.run_name for c in children if c.info.status == "FINISHED")


def test_a_resume_while_another_process_holds_the_lease_exits_2_naming_it(unfinished, tmp_path):
    uri, parent = unfinished
    held = holder(uri, parent, tmp_path)
    try:
        code, output = finish(lth("resume", parent, "--tracking-uri", uri, cwd=tmp_path))
        assert code == 2, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and f"pid {held.pid}" in lines[0], output  # before the data
        assert socket.gethostname() in lines[0] and "since" in lines[0]
        assert MlflowClient(uri).get_run(parent).info.status == "FAILED"  # left alone
    finally:
        held.send_signal(signal.SIGKILL)
        held.wait(timeout=30)
    # its holder is dead: the lease is stale and taken over
    code, output = finish(lth("resume", parent, "--tracking-uri", uri, cwd=tmp_path))
    assert code == 0, output
    run = MlflowClient(uri).get_run(parent)
    assert run.info.status == "FINISHED" and LEASE_TAG not in run.data.tags


def test_two_resumes_started_together_train_the_missing_work_once(unfinished, tmp_path):
    uri, parent = unfinished
    before = finished_tickets(uri, parent)
    processes = [lth("resume", parent, "--tracking-uri", uri, cwd=tmp_path) for _ in range(2)]
    results = sorted(finish(p) for p in processes)
    assert [code for code, _ in results] == [0, 2], results
    refused = results[1][1].strip().splitlines()  # the plan line, when it got that far
    errors = [line for line in refused if line.startswith("error:")]
    assert errors == refused[-1:] and "Traceback" not in results[1][1], refused
    assert "another process" in errors[0] or "already finished" in errors[0], refused
    after = finished_tickets(uri, parent)
    assert len(after) == len(set(after)) == len(before) + 1, after


def test_which_leases_count_as_alive():
    from dataclasses import replace

    from lth_suite.tracking.lease import STALE_AFTER_S, Lease

    mine = Lease.mine()
    assert mine.alive() and mine.this_process()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        other = replace(mine, pid=sleeper.pid, started=Lease.mine().started)
        assert not other.alive()  # a live pid started at another time: a reused pid
        assert replace(mine, pid=sleeper.pid, started=None).alive()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not replace(mine, pid=sleeper.pid, started=None).alive()  # gone
    away = replace(mine, host=mine.host + "-elsewhere")
    assert away.alive() and not away.this_process()
    assert not replace(away, renewed=time.time() - STALE_AFTER_S - 1).alive()
    assert Lease.parse("not json") is None and Lease.parse(mine.dump()) == mine
