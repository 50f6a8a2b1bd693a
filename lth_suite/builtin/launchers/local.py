"""The ``local`` launcher: every unit on this machine, in this process or in workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...launch.pool import WorkerPool
from ...launch.units import Job, Outcome, run_in_order


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
            from ...training.threads import usable_cores

            return usable_cores()
        return self.workers


@dataclass(frozen=True)
class LocalLauncher:
    """Every unit in this process, one after another, in graph order."""

    in_process: ClassVar[bool] = True

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run the jobs one after another."""
        return [run_in_order(job) for job in jobs]


@dataclass(frozen=True)
class LocalWorkers:
    """Units in ``workers`` processes of this machine, each after its dependencies; the
    units' writes come back and this process replays them, so SQLite stores work."""

    workers: int
    in_process: ClassVar[bool] = False
    driver_writes: ClassVar[bool] = True

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run every job's units at once, as many side by side as there are workers."""
        return WorkerPool(self.workers).run(jobs)


def local_launcher(params: LocalParams) -> LocalLauncher | LocalWorkers:
    """In process for one worker, else a pool of worker processes."""
    workers = params.resolved()
    return LocalLauncher() if workers == 1 else LocalWorkers(workers)
