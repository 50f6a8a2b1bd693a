"""Fixtures of lth-suite-pai's tests: hermetic, like lth-suite's own."""

from __future__ import annotations

import pytest

import lth_suite_pai.plugin
from lth_suite.plugins.manager import load_plugins
from lth_suite.testing import hermetic, tracking_uri  # noqa: F401  (fixtures)


@pytest.fixture
def plugins():
    """lth-suite's built-ins plus this plugin, loaded in process (not from the install)."""
    return load_plugins(extra=[lth_suite_pai.plugin], installed=False)


@pytest.fixture
def registry(plugins):
    """The registry with snip, grasp and synflow."""
    return plugins.registry


