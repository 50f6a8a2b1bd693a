"""Masks and what a level prunes: per-layer targets, the request a criterion receives."""

from ..deprecated import aliases as _aliases

# The names lth_suite/pruning.py had, deprecated (lth_suite/deprecated.py lists them).
__getattr__ = _aliases(__name__)
