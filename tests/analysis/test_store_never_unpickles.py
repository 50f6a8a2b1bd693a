"""What lth-suite reads back from a store never unpickles: a crafted pickle in place of a
state dict, a mask or a logged model is refused with one line, and never runs."""

from __future__ import annotations

import io
import pathlib
import pickle

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec


class Planted:
    """Unpickling this creates ``path``: what a crafted artifact could do instead."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def crafted_state(sentinel: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"fc1.weight": Planted(sentinel)}, buffer)
    return buffer.getvalue()


def crafted_mask(sentinel: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{"fc1.weight|bits": np.array([Planted(sentinel)], dtype=object),
                        "fc1.weight|shape": np.array([1])})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two finished tiny experiments, one logging no model and one its final model."""
    folder = tmp_path_factory.mktemp("unpickling")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    base = {"experiment": {"name": "x", "seed": 0}, "model": {"name": "mlp", "hidden": [16]},
            "dataset": {"name": "digits"}, "pruning": {"levels": 1},
            "training": {"batch_size": 60, "duration": "20it", "eval_every": 20},
            "controls": {"reinit": False, "random_prune": False}}
    tickets = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
        for name, tracking in (("states", {"log_models": "none"}),
                               ("model_only", {"log_models": "final"})):
            spec = build_spec({**base, "experiment": {"name": name, "seed": 0},
                               "tracking": tracking}, plugins.registry)
            parent = run_experiment(spec, plugins, uri).parent_run_id
            client = MlflowClient(uri)
            children = client.search_runs([client.get_run(parent).info.experiment_id],
                                          f"tags.mlflow.parentRunId = '{parent}'")
            tickets[name] = next(c.info.run_id for c in children
                                 if c.info.run_name == "r0-level1-ticket")
    return uri, tickets


def plant(uri: str, run_id: str, artifact: str, payload: bytes, tmp: pathlib.Path) -> None:
    """Overwrite one artifact of a run, as someone handing over a store could."""
    folder, _, name = artifact.rpartition("/")
    local = tmp / "planted" / name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(payload)
    MlflowClient(uri).log_artifact(run_id, str(local), folder or None)


def test_the_crafted_pickles_would_run_if_unpickled(tmp_path):
    """The test can fail: loading these payloads the unsafe way creates the file."""
    torch.load(io.BytesIO(crafted_state(tmp_path / "a")), weights_only=False)
    np.load(io.BytesIO(crafted_mask(tmp_path / "b")), allow_pickle=True)["fc1.weight|bits"]
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


def model_file(uri: str, run_id: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    run = MlflowClient(uri).get_run(run_id)
    models = [m for m in mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                                     output_format="list")
              if m.source_run_id == run_id]
    return models[0].artifact_location.removeprefix("file://") + "/data/model.pth"


@pytest.mark.parametrize("case", ["state_dict", "mask", "logged_model"])
def test_export_refuses_a_crafted_artifact_with_one_line(store, tmp_path, case):
    uri, tickets = store
    sentinel = tmp_path / "executed"
    if case == "state_dict":
        run = tickets["states"]
        plant(uri, run, "state_dict.pt", crafted_state(sentinel), tmp_path)
    elif case == "mask":
        run = tickets["states"]
        plant(uri, run, "mask.npz", crafted_mask(sentinel), tmp_path)
    else:  # a store without state_dict.pt (handed over so): the logged model is left
        run = tickets["model_only"]
        artifacts = MlflowClient(uri).get_run(run).info.artifact_uri.removeprefix("file://")
        pathlib.Path(artifacts, "state_dict.pt").unlink()
        pathlib.Path(model_file(uri, run)).write_bytes(pickle.dumps(Planted(sentinel)))
    result = CliRunner().invoke(app, ["export", run, "--out", str(tmp_path / "out"),
                                      "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and run in lines[0] and "refused" in lines[0], result.output
    assert {"state_dict": "state_dict.pt", "mask": "mask.npz",
            "logged_model": "model"}[case] in lines[0]
    assert not sentinel.exists(), "a crafted pickle ran"
    assert not (tmp_path / "out").exists()


def test_report_refuses_a_crafted_mask_with_one_line(store, tmp_path):
    uri, tickets = store
    sentinel = tmp_path / "executed"
    plant(uri, tickets["states"], "mask.npz", crafted_mask(sentinel), tmp_path)
    parent = MlflowClient(uri).get_run(tickets["states"]).data.tags["mlflow.parentRunId"]
    result = CliRunner().invoke(app, ["report", parent, "--tracking-uri", uri,
                                      "--out", str(tmp_path / "report")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "mask.npz" in lines[0] and "refused" in lines[0], result.output
    assert not sentinel.exists(), "a crafted pickle ran"


def test_resume_refuses_a_crafted_checkpoint_and_leaves_no_run_running(tmp_path, monkeypatch):
    """The level-0 ticket's weights are what a resume prunes from: crafted, refused."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    spec = build_spec({"experiment": {"name": "r", "seed": 0},
                       "model": {"name": "mlp", "hidden": [16]}, "pruning": {"levels": 1},
                       "training": {"batch_size": 60, "duration": "20it", "eval_every": 20},
                       "controls": {"reinit": False, "random_prune": False},
                       "tracking": {"log_models": "none"}}, plugins.registry)
    parent = run_experiment(spec, plugins, uri).parent_run_id
    client = MlflowClient(uri)
    sentinel = tmp_path / "executed"
    for child in client.search_runs([client.get_run(parent).info.experiment_id],
                                    f"tags.mlflow.parentRunId = '{parent}'"):
        if child.info.run_name == "r0-level0-ticket":
            plant(uri, child.info.run_id, "state_dict.pt", crafted_state(sentinel), tmp_path)
        else:
            client.delete_run(child.info.run_id)  # the level to train again
    client.set_terminated(parent, "FAILED")
    result = CliRunner().invoke(app, ["resume", parent, "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "state_dict.pt" in errors[0] and "refused" in errors[0], \
        result.output
    assert not sentinel.exists(), "a crafted pickle ran"
    statuses = {r.info.status for r in client.search_runs(
        [client.get_run(parent).info.experiment_id])}
    assert "RUNNING" not in statuses, statuses
