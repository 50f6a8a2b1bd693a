"""The experiment spec: the pydantic model, loading YAML with ``--set``, presets, sweeps."""

from .model import ExperimentSpec

__all__ = ["ExperimentSpec"]
