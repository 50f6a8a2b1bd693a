"""What an experiment to execute is, and how it ended: the plans and results that the
entry points (``launch.execute``) hand to the in-process and out-of-process paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LthError
from ..lottery.events import ExperimentFinished
from ..lottery.experiment import Experiment
from ..lottery.progress import Progress
from ..parallel.units import Launcher, Unit, UnitGraph
from ..spec.sections import ExperimentSpec
from ..tracking import Tracker

# Stores that processes on other machines can share: servers and database backends.
SHARED_SCHEMES = ("http", "https", "databricks", "postgresql", "mysql", "mssql", "oracle")

ProgressFactory = Callable[[int], Progress | None]
"""Makes the progress display of a number of trainings (None: a silent one)."""


def check_tracking_uri(uri: str, launcher: str) -> None:
    """Refuse a store that units in other processes cannot share (sqlite, local paths)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in SHARED_SCHEMES:
        return
    raise LthError(f"tracking.uri / --tracking-uri {uri}: launcher '{launcher}' trains in "
                   "other processes, which need a shared tracking store: an MLflow server "
                   "(http://HOST:5000) or a database (postgresql://...), not a local file")


def unit_graph(spec: ExperimentSpec) -> UnitGraph:
    """The units of an experiment and what each one waits for."""
    return UnitGraph.build(spec.experiment.replicates, spec.pruning.levels,
                           spec.controls.enabled(),
                           dense_controls=spec.sparsity is not None and spec.sparsity.dynamic is not None)


@dataclass
class ExperimentPlan:
    """One experiment to execute: its spec and the tracker its parent run uses.

    ``experiment`` may be left None: it is prepared when needed and released after, so
    a sweep does not hold every point's data at once. ``resume_id`` continues a parent.
    """

    spec: ExperimentSpec
    tracker: Tracker
    experiment: Experiment | None = None
    resume_id: str | None = None
    label: str = ""
    parent_id: str | None = None
    done: frozenset[Unit] = frozenset()


@dataclass
class Result:
    """How one experiment ended: finished, or the error that stopped it."""

    parent_id: str
    finished: ExperimentFinished | None = None
    error: LthError | None = None
    units: int = 0  # units the launcher ran (a resume skips finished ones out of process)
    seconds: float = 0.0  # wall time of the experiment in this process
    launcher: Launcher | None = None  # what ran it (set by the entry points)
    uri: str = ""  # the tracking store it ran against (set by the entry points)
