"""The analyzer protocol: a finished level or experiment in, metrics out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .events import ExperimentFinished, LevelFinished


@dataclass
class Analysis:
    """What an analyzer returns: metrics, optionally a table logged as JSON and tags set on
    the parent run as ``<analyzer>.<tag>`` (what the metrics were measured on, say)."""

    metrics: dict[str, float] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def as_analysis(output: Analysis | Mapping[str, float] | None) -> Analysis:
    """Accept a plain metrics mapping (or nothing) where an ``Analysis`` is expected."""
    if isinstance(output, Analysis):
        return output
    return Analysis(metrics={k: float(v) for k, v in (output or {}).items()})


class Analyzer(Protocol):
    """An analysis, as built by a registered factory; it must not modify what it reads."""

    def after_level(self, event: LevelFinished) -> Analysis | Mapping[str, float]:
        """Metrics of one level, logged on the parent run at ``step=level``.

        A table, if any, is logged as ``analysis/<name>/level_<NN>.json``.
        """
        ...

    # Optional: ``seen_level(event: LevelFinished) -> None``, called instead of
    # ``after_level`` for a level a resumed experiment restored with its analyses already
    # logged, so an analyzer that compares a level with the one before (mask_similarity)
    # keeps the state an uninterrupted run would have. It logs nothing.

    def after_experiment(self, event: ExperimentFinished) -> Analysis | Mapping[str, float]:
        """Metrics of the whole experiment, logged once on the parent run.

        A table, if any, is logged as ``analysis/<name>/experiment.json``.
        """
        ...
