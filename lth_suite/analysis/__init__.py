"""Analyses of tickets read back from the store: mask similarity, shrinking, export."""

from ..deprecated import aliases as _aliases

# The names lth_suite/analysis.py had, deprecated (lth_suite/deprecated.py lists them).
__getattr__ = _aliases(__name__)
