"""The analyzer protocol: a finished level or experiment in, metrics out."""

from __future__ import annotations

from typing import Protocol

from .events import ExperimentFinished, LevelFinished


class Analyzer(Protocol):
    """An analysis, as built by a registered factory; it must not modify what it reads."""

    def after_level(self, event: LevelFinished) -> dict[str, float]:
        """Metrics of one level, logged on the parent run at ``step=level``."""
        ...

    def after_experiment(self, event: ExperimentFinished) -> dict[str, float]:
        """Metrics of the whole experiment, logged once on the parent run."""
        ...
