"""Pruning at initialisation for lth-suite: the SNIP, GraSP and SynFlow criteria."""

__version__ = "0.1.0"
