"""Deprecated old path: its names are now imported from ``lth_suite.api`` (see deprecated.py)."""

from ..deprecated import aliases as _aliases

__getattr__ = _aliases(__name__)
