"""The ``local`` launcher: every unit in this process, in graph order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ...launch.units import Job, Outcome, run_in_order


@dataclass(frozen=True)
class LocalLauncher:
    """Every unit in this process, one after another, in graph order."""

    in_process: ClassVar[bool] = True

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run the jobs one after another."""
        return [run_in_order(job) for job in jobs]
