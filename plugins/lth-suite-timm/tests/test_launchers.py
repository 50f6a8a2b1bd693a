"""A timm model trains alike wherever its trainings run: on local workers, under torchrun,
and resumed after a failure, each against the same experiment in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lth_suite_timm
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec
from lth_suite.testing import fail_then_resume

TORCHRUN = Path(sys.executable).with_name("torchrun")
VIT = {"name": "timm", "arch": "vit_tiny_patch16_224",
       "kwargs": {"img_size": 8, "patch_size": 4, "depth": 1, "embed_dim": 24, "num_heads": 2}}
@pytest.fixture(scope="module")
def spec_data(tmp_path_factory) -> dict:
    """A one-block ViT on a tiny 1-channel npz, AdamW, late rewinding, a reinit control."""
    folder = tmp_path_factory.mktemp("vit")
    generator = np.random.default_rng(0)
    np.savez(folder / "tiny.npz", x=generator.random((96, 1, 8, 8), dtype=np.float32),
             y=np.arange(96) % 3)
    return {
        "experiment": {"name": "vit-launch", "seed": 0, "replicates": 1},
        "model": VIT, "dataset": {"name": "npz", "path": str(folder / "tiny.npz")},
        "training": {"optimizer": "adamw", "lr": 1e-3, "batch_size": 16, "duration": "6it",
                     "eval_every": 3, "threads": 1},
        "pruning": {"levels": 1}, "rewind": {"name": "step", "iteration": "2it"},
        "controls": {"reinit": True, "random_prune": False},
        "tracking": {"log_models": "none"}, "report": {"enabled": False},
    }


def branches(finished) -> dict:
    """(replicate, level, branch) -> (mask, metric history) of a finished experiment."""
    return {(b.replicate, b.level, b.branch): (b.mask, b.result.history)
            for event in finished.levels for b in event.branches}


@pytest.fixture(scope="module")
def in_process(spec_data, plugins, tmp_path_factory) -> dict:
    uri = f"sqlite:///{tmp_path_factory.mktemp('alone') / 'mlflow.db'}"
    return branches(run_experiment(build_spec(spec_data, plugins.registry), plugins, uri))


def assert_same(expected: dict, actual: dict, tolerance: float = 0.0) -> None:
    assert sorted(actual) == sorted(expected)
    for key, (mask, history) in expected.items():
        assert actual[key][0].equals(mask), key
        for row, got in zip(history, actual[key][1], strict=True):
            assert got.keys() == row.keys(), key
            assert list(got.values()) == pytest.approx(list(row.values()), rel=tolerance,
                                                       abs=tolerance), key


def test_local_workers_train_a_vit_as_one_process_does(spec_data, in_process, plugins, tmp_path,
                                                       monkeypatch):
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "lth-suite-timm")  # what workers load
    spec = build_spec({**spec_data, "launcher": {"name": "local", "workers": 2}},
                      plugins.registry)
    assert_same(in_process, branches(run_experiment(spec, plugins,
                                                    f"sqlite:///{tmp_path / 'pool.db'}")))


def test_a_failed_vit_experiment_resumes_to_the_same_tickets(spec_data, in_process, tmp_path,
                                                             monkeypatch):
    resumed = fail_then_resume(spec_data, [lth_suite_timm], f"sqlite:///{tmp_path / 'flaky.db'}",
                               {"reinit": True, "random_prune": False})
    found = branches(resumed)
    assert found[(0, 1, "flaky")][0].equals(found[(0, 1, "ticket")][0])
    assert_same(in_process, {k: v for k, v in found.items() if k[2] != "flaky"})
    restored = {(b.level, b.branch) for e in resumed.levels for b in e.branches if b.restored}
    assert (0, "ticket") in restored and (1, "flaky") not in restored


def test_two_torchrun_ranks_train_a_vit_as_one_process_does(spec_data, in_process, tmp_path):
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed beside this Python")
    spec = tmp_path / "vit.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    uri = f"sqlite:///{tmp_path / 'ddp.db'}"
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": "lth-suite-timm", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m",
                           "lth_suite", "run", str(spec), "--tracking-uri", uri], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = {(int(r.data.params["replicate"]), int(r.data.params["level"]),
                 r.data.params["branch"]): r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(children) == sorted(in_process)  # rank 1 logged nothing of its own
    for key, (_, history) in in_process.items():
        logged = client.get_metric_history(children[key].info.run_id, "val_loss")
        expected = [row["val_loss"] for row in history if "val_loss" in row]
        assert len(expected) == 3, key  # evaluated at iterations 0, 3 and 6
        assert [m.value for m in logged] == pytest.approx(expected, rel=1e-4, abs=1e-5), key
