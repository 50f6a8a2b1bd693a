"""Shared fixtures: hermetic plugins, a temporary MLflow store, tiny specs."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from lth_suite.lottery.progress import SilentProgress
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY, hermetic, tracking_uri  # noqa: F401  (fixtures)


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




class NoteKeeper(SilentProgress):
    """A progress that keeps the warnings a run gives, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def notes() -> NoteKeeper:
    """A progress recording the run's warnings (``notes.lines``)."""
    return NoteKeeper()
