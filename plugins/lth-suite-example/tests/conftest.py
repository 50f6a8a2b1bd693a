"""Fixtures: load this plugin in process next to lth-suite's built-ins, hermetically."""

from __future__ import annotations

from pathlib import Path

import pytest

import lth_suite_example
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
    """Built-ins plus this plugin; installed=False keeps other installed plugins out."""
    return load_plugins(extra=[lth_suite_example], installed=False)
