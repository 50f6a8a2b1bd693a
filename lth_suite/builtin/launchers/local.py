"""The ``local`` launcher: every unit on this machine, in this process, each level's
networks one after another or side by side in worker processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...api import ExperimentSpec, Job, Launcher, LthError, Outcome, WorkerPool, run_in_order


class LocalParams(BaseModel):
    """How many trainings run at once on this machine."""

    model_config = ConfigDict(extra="forbid")
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=1, description="1: every training in this process, one after another; N or "
        "auto (one per core): independent trainings side by side in worker processes, this "
        "process the only writer to the tracking store")

    def resolved(self) -> int:
        """The number of worker processes; 1 means none (in this process)."""
        if self.workers == "auto":
            from ...api import usable_cores

            return usable_cores()
        return self.workers


class LocalLauncher(Launcher):
    """Every unit in this process, one after another, in graph order."""

    in_process: ClassVar[bool] = True

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

    def __init__(self, workers: int):
        self.workers = workers
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
    workers = params.resolved()
    return LocalLauncher() if workers == 1 else LocalWorkers(workers)
