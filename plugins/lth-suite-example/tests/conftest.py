"""Fixtures: load this plugin in process next to lth-suite's built-ins, hermetically."""

from __future__ import annotations

import pytest

import lth_suite_example
from lth_suite.plugins.manager import load_plugins
from lth_suite.testing import hermetic  # noqa: F401  (autouse: no installed plugins, tmp cwd)


@pytest.fixture
def plugins():
    """Built-ins plus this plugin; installed=False keeps other installed plugins out."""
    return load_plugins(extra=[lth_suite_example], installed=False)
