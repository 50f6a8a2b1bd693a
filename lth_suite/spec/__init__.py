"""The experiment spec: the pydantic model, loading YAML with ``--set``, presets, sweeps."""

from .sections import ExperimentSpec

__all__ = ["ExperimentSpec"]
