"""The plugin packages of plugins/, as a user installs them (the README's test command).

These tests use the installed distributions, so they skip where the packages are not
installed (a developer machine); CI installs them with the README's command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {  # distribution -> what it provides
    "lth-suite-pai": {"criterion": ["snip", "grasp", "synflow"]},
    "lth-suite-example": {"architecture": ["tiny_mlp"], "analyzer": ["weight_norm"],
                          "control": ["shuffled_weights"]},
    "lth-suite-timm": {"architecture": ["timm"]},
    "lth-suite-hf": {"architecture": ["hf"], "dataset": ["text"]},
}


def installed(dist: str) -> str:
    """The installed version, or skip."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed: pip install ./plugins/{dist}")


def lth_suite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real command, with every installed plugin (LTH_SUITE_LOAD_PLUGINS unset)."""
    command = Path(sys.executable).with_name("lth-suite")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "lth_suite"]
    env = {k: v for k, v in os.environ.items()
           if k != "LTH_SUITE_LOAD_PLUGINS" and not k.startswith("MLFLOW_")}
    return subprocess.run([*argv, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_plugins_json_lists_the_package_with_its_version(dist, tmp_path):
    version = installed(dist)
    done = lth_suite("plugins", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {row["plugin"]: row for row in json.loads(done.stdout)}
    assert rows[dist]["version"] == version and rows[dist]["distribution"] == dist
    assert rows[dist]["status"] == "ok" and rows[dist]["error"] is None
    assert rows[dist]["provides"] == PACKAGES[dist]
    assert "warning:" not in done.stderr


def test_synflow_spec_runs_with_the_installed_plugin(tmp_path):
    version = installed("lth-suite-pai")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the spec's own first-line command, in a scratch folder so artifacts land there
    done = lth_suite("run", str(ROOT / "specs" / "synflow_digits.yaml"), "--tracking-uri", uri,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy at the early-stop iteration" in done.stdout

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 1 + 4 * 2  # dense; ticket + random_prune
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = parents[0].data
    assert parent.params["spec.pruning.criterion.name"] == "synflow"
    assert parent.params["spec.pruning.criterion.at"] == "init"
    assert json.loads(parent.tags["lth_suite.plugins"])["lth-suite-pai"] == version


def test_the_installed_example_control_trains_beside_the_built_in_ones(tmp_path):
    installed("lth-suite-example")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "experiment: {name: third-party-control}\n"
        "model: {name: mlp, hidden: [16]}\n"
        "training: {duration: 30it, eval_every: 15}\n"
        "pruning: {levels: 1}\n"
        "controls: {reinit: true, random_prune: false, signed_constant: true,\n"
        "           shuffled_weights: {kept_only: false}}\n"
        "tracking: {log_models: none, log_state_dicts: false}\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = lth_suite("run", str(spec), "--tracking-uri", uri, "--set", "report.enabled=false",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    names = {r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert names == {"r0-level0-ticket", "r0-level1-ticket", "r0-level1-reinit",
                     "r0-level1-signed_constant", "r0-level1-shuffled_weights"}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags).data
    assert parent.params["spec.controls.shuffled_weights.kept_only"] == "false"
    assert ["shuffled_weights", "same mask, starting weights shuffled within each layer",
            "weights"] in json.loads(parent.tags["lth_suite.controls"])
