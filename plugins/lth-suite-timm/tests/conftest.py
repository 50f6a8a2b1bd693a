"""Fixtures: this plugin loaded in process next to lth-suite's built-ins, hermetically."""

from __future__ import annotations

import lth_suite_timm
import pytest

from lth_suite.plugins.manager import load_plugins
from lth_suite.testing import hermetic, tracking_uri  # noqa: F401  (autouse: hermetic; a store)


@pytest.fixture(scope="session")
def plugins():
    """Built-ins plus this plugin; installed=False keeps other installed plugins out."""
    return load_plugins(extra=[lth_suite_timm], installed=False)
