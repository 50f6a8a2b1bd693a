"""Shared fixtures: hermetic plugins, a temporary MLflow store, tiny specs."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from lth_suite.plugins import load_plugins
from lth_suite.spec_loading import build_spec

TINY: dict[str, Any] = {
    "experiment": {"name": "tiny", "seed": 0, "replicates": 1},
    "model": {"name": "mlp", "hidden": [32, 16]},
    "dataset": {"name": "digits", "validation": 0.1},
    "training": {"optimizer": "adam", "lr": 3e-3, "batch_size": 60, "duration": "40it",
                 "eval_every": 20},
    "pruning": {"criterion": "magnitude", "levels": 2},
    "rewind": "init",
    "controls": {"reinit": True, "random_prune": True},
    "tracking": {"log_models": "final"},
}


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No installed third-party plugins, no inherited MLflow settings, cwd in tmp."""
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                 "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def plugins():
    """Built-in plugins only."""
    return load_plugins(installed=False)


@pytest.fixture
def registry(plugins):
    """The built-in registry."""
    return plugins.registry


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of a spec that trains in about a second."""
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_spec(tiny, registry):
    """The tiny spec, validated."""
    return build_spec(tiny, registry)


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec mapping (or YAML text) to a file and return its path."""

    def write(data: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        text = textwrap.dedent(data) if isinstance(data, str) else yaml.safe_dump(data)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A temporary embedded MLflow store."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
