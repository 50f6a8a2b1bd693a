"""The ``local`` launcher: every unit on this machine, in this process, each level's
networks one after another or side by side in worker processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...api import ExperimentSpec, Job, Launcher, LthError, Outcome, WorkerPool, run_in_order
from .capacity import Capacity, workers_that_fit


class LocalParams(BaseModel):
    """How many trainings run at once on this machine."""

    model_config = ConfigDict(extra="forbid")
    workers: int | Literal["auto"] = Field(
        default=1, description="1: every training in this process, one after another; N or "
        "auto (one per free core): independent trainings side by side in worker processes, "
        "this process the only writer to the tracking store; cut to the cores and memory "
        "this machine has")

    @field_validator("workers", mode="before")
    @classmethod
    def _count_or_auto(cls, value: Any) -> Any:
        # One message for both forms, not one per member of the union.
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                               and value >= 1):
            return value
        raise ValueError(f"must be a number of worker processes >= 1, or auto (got {value!r})")

    def resolved(self) -> Capacity:
        """How many worker processes fit (1 means none: in this process), and the line
        that says why when fewer than asked."""
        if self.workers == 1:
            return Capacity(1, None)
        return workers_that_fit(None if self.workers == "auto" else self.workers)


class LocalLauncher(Launcher):
    """Every unit in this process, one after another, in graph order."""

    in_process: ClassVar[bool] = True

    def __init__(self, note: str | None = None):
        self.note = note

    def __eq__(self, other: object) -> bool:
        return type(other) is LocalLauncher

    def __hash__(self) -> int:
        return hash(LocalLauncher)

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run the jobs one after another."""
        return [run_in_order(job) for job in jobs]


class LocalWorkers(Launcher):
    """Every unit in this process, each level's networks trained side by side on
    ``workers`` worker processes of this machine (``pool``); this process records them,
    so it stays the only writer to the tracking store and SQLite stores work."""

    in_process: ClassVar[bool] = True

    def __init__(self, workers: int, note: str | None = None):
        self.workers, self.note = workers, note
        self.pool = WorkerPool(workers)

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run the jobs one after another; the runner trains on ``pool``."""
        return [run_in_order(job) for job in jobs]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalWorkers) and other.workers == self.workers

    __hash__ = None  # type: ignore[assignment]  # holds processes: not a dict key

    def __repr__(self) -> str:
        return f"LocalWorkers({self.workers})"

    def start(self, spec: ExperimentSpec | None = None) -> None:
        """Start the workers: they import the training code, and prepare ``spec``'s
        experiment when given, while this process loads the data."""
        from ...api import launched

        if launched():
            raise LthError("launcher.workers: under torchrun every process trains the same "
                           "network data-parallel; leave workers at 1")
        self.pool.start(spec)

    def __enter__(self) -> LocalWorkers:
        """Start the workers if ``start`` was not called."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the workers."""
        self.pool.stop()


def local_launcher(params: LocalParams) -> LocalLauncher | LocalWorkers:
    """In process for one worker, else a pool of worker processes."""
    fit = params.resolved()
    return LocalLauncher(fit.note) if fit.workers == 1 else LocalWorkers(fit.workers, fit.note)
