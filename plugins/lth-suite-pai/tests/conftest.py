"""Fixtures of lth-suite-pai's tests: hermetic, like lth-suite's own."""

from __future__ import annotations

from pathlib import Path

import pytest

import lth_suite_pai.plugin
from lth_suite.plugins import load_plugins


@pytest.fixture(autouse=True)
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No other installed plugins, no inherited MLflow settings, cwd in tmp."""
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                 "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def plugins():
    """lth-suite's built-ins plus this plugin, loaded in process (not from the install)."""
    return load_plugins(extra=[lth_suite_pai.plugin], installed=False)


@pytest.fixture
def registry(plugins):
    """The registry with snip, grasp and synflow."""
    return plugins.registry


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A temporary embedded MLflow store."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
