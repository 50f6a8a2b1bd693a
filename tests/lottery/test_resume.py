"""Resume: a killed experiment continues in its parent run and ends as if never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.pruning.masks import Mask

KEYS = ("early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy", "val_loss")


def lth(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": ""}
    return subprocess.Popen([sys.executable, "-m", "lth_suite", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished_branches(uri: str) -> tuple[str, dict]:
    """The parent run id and, per (replicate, level, branch), its mask and metric histories."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    found = {}
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags and run.info.status == "FINISHED":
            p = run.data.params
            key = (p["replicate"], p["level"], p["branch"])
            assert key not in found, f"{key} finished twice"
            path = client.download_artifacts(run.info.run_id, "mask.npz")
            mask = Mask.unpack(Path(path).read_bytes())
            history = {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
                       for k in KEYS}
            found[key] = (mask, history)
    return parents[0].info.run_id, found


def wait_for_running_child(uri: str, name: str, timeout: float = 240) -> None:
    client = MlflowClient(uri)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                      filter_string=f"attributes.run_name = '{name}'")
        except Exception:  # the database may be busy or not yet created
            runs = []
        if any(r.info.status == "RUNNING" for r in runs):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never started")


ANALYZERS = ("mask_similarity", "layer_density", "init_stats")


def parent_analyses(uri: str, parent_id: str) -> dict:
    """The analyzers' metric histories and tables on the parent run."""
    client = MlflowClient(uri)
    metrics = client.get_run(parent_id).data.metrics
    found = {key: [(m.step, m.value) for m in client.get_metric_history(parent_id, key)]
             for key in metrics if key.split("/")[0] in ANALYZERS}
    for name in ANALYZERS:
        for item in client.list_artifacts(parent_id, f"analysis/{name}"):
            found[item.path] = json.loads(Path(client.download_artifacts(
                parent_id, item.path)).read_text())
    return found


@pytest.fixture
def resumable_spec(tiny, write_spec):
    tiny["training"]["duration"] = "400it"
    tiny["training"]["eval_every"] = 100
    tiny["analyzers"] = list(ANALYZERS)
    return write_spec(tiny)


def test_sigkill_mid_level_then_resume_matches_an_uninterrupted_run(resumable_spec, tmp_path):
    whole, broken = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'broken.db'}"
    done = lth("run", str(resumable_spec), "--tracking-uri", whole, cwd=tmp_path)
    assert done.wait(timeout=600) == 0, done.stdout.read()

    victim = lth("run", str(resumable_spec), "--tracking-uri", broken, cwd=tmp_path)
    wait_for_running_child(broken, "r0-level1-reinit")
    victim.send_signal(signal.SIGKILL)  # in the middle of level 1
    victim.wait(timeout=60)
    client = MlflowClient(broken)
    stuck = client.search_runs([e.experiment_id for e in client.search_experiments()],
                               filter_string="attributes.status = 'RUNNING'")
    stuck_children = {r.info.run_name for r in stuck} - {r.info.run_name for r in stuck
                                                         if "mlflow.parentRunId" not in r.data.tags}
    assert len(stuck_children) == 1  # SIGKILL leaves the child it was training RUNNING

    resumed = lth("run", str(resumable_spec), "--resume", "--tracking-uri", broken, cwd=tmp_path)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "(restored)" in output

    whole_parent, expected = finished_branches(whole)
    broken_parent, actual = finished_branches(broken)
    assert sorted(actual) == sorted(expected)
    for key, (mask, history) in expected.items():
        assert actual[key][0].equals(mask), key
        assert actual[key][1] == history, key
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    statuses = {r.info.run_name: r.info.status for r in runs if r.info.status != "FINISHED"}
    assert statuses == {name: "KILLED" for name in stuck_children}  # closed on resume
    assert client.get_run(broken_parent).info.status == "FINISHED"
    levels = client.get_metric_history(broken_parent, "ticket/early_stop_test_accuracy")
    assert sorted(m.step for m in levels) == [0, 1, 2]
    analyses = parent_analyses(whole, whole_parent)
    assert "mask_similarity/consecutive_iou" in analyses  # levels 1 and 2 compare
    assert [step for step, _ in analyses["mask_similarity/consecutive_iou"]] == [1, 2]
    assert parent_analyses(broken, broken_parent) == analyses


def test_resume_with_a_changed_spec_is_refused_naming_the_fields(tiny, write_spec, tracking_uri):
    tiny["training"]["duration"] = "20it"
    first = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri", tracking_uri])
    assert first.exit_code == 0
    client = MlflowClient(tracking_uri)
    parent = next(r for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()])
        if "mlflow.parentRunId" not in r.data.tags)
    client.set_terminated(parent.info.run_id, "KILLED")  # as if it had been interrupted
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--resume", "--tracking-uri",
                                      tracking_uri, "--set", "training.lr=0.01"])
    assert result.exit_code == 2
    assert "refusing to resume" in result.output and "training.lr: 0.003 -> 0.01" in result.output
    again = CliRunner().invoke(app, ["resume", parent.info.run_id, "--tracking-uri", tracking_uri,
                                     "--set", "pruning.levels=3"])
    assert again.exit_code == 2 and "pruning.levels: 2 -> 3" in again.output
    same = CliRunner().invoke(app, ["resume", parent.info.run_id, "--tracking-uri", tracking_uri])
    assert same.exit_code == 0, same.output
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    finished = CliRunner().invoke(app, ["resume", parent.info.run_id, "--tracking-uri", tracking_uri])
    assert finished.exit_code == 2 and "already finished" in finished.output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_end_runs_as_killed_and_print_the_resume_command(
        resumable_spec, tmp_path, signum):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = lth("run", str(resumable_spec), "--tracking-uri", uri, cwd=tmp_path)
    wait_for_running_child(uri, "r0-level1-ticket")
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert f"resume with: lth-suite resume {parent.info.run_id}" in output
    statuses = {r.info.run_name: r.info.status for r in runs}
    assert "RUNNING" not in statuses.values()
    assert statuses["r0-level0-ticket"] == "FINISHED"
    assert statuses["r0-level1-ticket"] == "KILLED" and parent.info.status == "KILLED"
    level0 = next(r for r in runs if r.info.run_name == "r0-level0-ticket")
    assert client.get_metric_history(level0.info.run_id, "val_loss")  # what was logged stays
