"""Data-parallel training under torchrun (2 Gloo processes on the CPU) equals one process,
streamed data included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.training.distributed import Ranks, share_of
from tests.lottery.test_resume import finished_branches, wait_for_running_child
from tests.training.test_streaming import write_image_folder

TORCHRUN = Path(sys.executable).with_name("torchrun")
EXPECTED = {("0", "0", "ticket"), ("0", "1", "ticket"), ("0", "1", "reinit")}


def torchrun(*args: str, cwd: Path) -> subprocess.Popen:
    """``torchrun --nproc-per-node 2 -m lth_suite ARGS`` in its own process group."""
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc-per-node", "2",
                             "-m", "lth_suite", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """A small conv net on a tiny image folder streamed by 2 loader workers (augmented),
    SGD with momentum, late rewinding, a reinit control."""
    folder = tmp_path_factory.mktemp("data")
    write_image_folder(folder / "images")
    path = folder / "spec.yaml"
    path.write_text(f"""
experiment: {{name: ddp, seed: 0}}
model: {{name: conv, depth: 2, width: 4, hidden: [16]}}
dataset: {{name: imagefolder, root: {folder / "images"}, image_size: 32, resize: 32,
           validation: 3, storage: stream, workers: 2, eval_batch_size: 12}}
training: {{optimizer: sgd, lr: 0.05, momentum: 0.9, batch_size: 6, duration: 60it,
           eval_every: 20}}
pruning: {{levels: 1}}
rewind: {{name: step, iteration: 5it}}
controls: {{reinit: true, random_prune: false}}
tracking: {{log_models: none}}
report: {{enabled: false}}
""")
    return path


@pytest.fixture(scope="module")
def one_process(spec, tmp_path_factory) -> dict:
    """The experiment trained by one process with the whole batch of 6."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('one') / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return finished_branches(uri)[1]


def assert_same_experiment(actual: dict, expected: dict) -> None:
    """The same branches, masks bit for bit, metric histories to float tolerance."""
    assert sorted(actual) == sorted(expected) == sorted(EXPECTED)
    for key, (mask, history) in expected.items():
        assert actual[key][0].equals(mask), key
        for metric, rows in history.items():
            got = actual[key][1][metric]
            assert [step for step, _ in got] == [step for step, _ in rows], (key, metric)
            assert [v for _, v in got] == pytest.approx([v for _, v in rows], rel=1e-4,
                                                        abs=1e-5), (key, metric)


def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(
        spec, one_process, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = torchrun("run", str(spec), "--tracking-uri", uri, cwd=tmp_path)
    output = done.communicate(timeout=600)[0]
    assert done.returncode == 0, output
    parent, branches = finished_branches(uri)  # one parent run: only rank 0 logged
    assert_same_experiment(branches, one_process)
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 + len(EXPECTED)  # every child once: rank 1 created none
    assert all(r.info.status == "FINISHED" for r in runs)
    assert output.count("r0-level1-reinit:") == 1  # the progress of rank 0 alone


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its ranks in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def test_a_killed_data_parallel_run_resumes_to_the_same_experiment(spec, one_process, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    victim = torchrun("run", str(spec), "--tracking-uri", uri, cwd=tmp_path)
    wait_for_running_child(uri, "r0-level1-reinit")
    for pid in [victim.pid, *descendants(victim.pid)]:  # torchrun and both ranks, mid level 1
        os.kill(pid, signal.SIGKILL)
    victim.wait(timeout=60)
    client = MlflowClient(uri)
    running = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                 filter_string="attributes.status = 'RUNNING'")
    assert any(r.info.run_name.startswith("ddp-") for r in running)  # the parent did not end
    resumed = torchrun("run", str(spec), "--resume", "--tracking-uri", uri, cwd=tmp_path)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "(restored)" in output
    parent, branches = finished_branches(uri)
    assert_same_experiment(branches, one_process)
    client = MlflowClient(uri)
    assert client.get_run(parent).info.status == "FINISHED"


def test_shares_of_an_in_memory_batch_make_up_the_batch():
    whole = [(torch.arange(12.0).view(6, 2), torch.arange(6))]
    shares = [share_of(lambda iteration: whole, Ranks(rank, 3))(0)[0] for rank in range(3)]
    assert torch.equal(torch.cat([x for x, _ in shares]), whole[0][0])
    assert torch.equal(torch.cat([y for _, y in shares]), whole[0][1])


def test_a_batch_that_does_not_split_over_the_processes_is_a_one_line_error(
        spec, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; the check comes before joining
    result = CliRunner().invoke(app, ["run", str(spec), "--set", "training.batch_size=5",
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2
    assert result.output.strip().endswith(
        "training.batch_size: 5 does not split evenly over the 2 processes torchrun started")
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged


def test_the_ray_launcher_under_torchrun_is_refused(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["run", str(spec), "--set", "launcher=ray",
                                      "--tracking-uri", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "launcher: 'ray' under torchrun" in result.output


def test_dynamic_sparse_training_under_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    spec = Path(__file__).resolve().parents[2] / "specs" / "rigl_digits.yaml"
    result = CliRunner().invoke(app, ["run", str(spec), "--tracking-uri",
                                      f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2, result.output
    assert "sparsity.dynamic: dynamic sparse training does not run under torchrun" in result.output
    assert not (tmp_path / "mlflow.db").exists()
