"""Units, their dependency graph, and the contract of launchers that run them.

A unit is one (replicate, level, branch) training. Per replicate the tickets form a
chain, ticket(r, 0) -> ticket(r, 1) -> ...; each control (r, L, c) needs only the
ticket (r, L). A launcher receives the graph of one or more experiments (jobs) with a
function that runs one unit, and runs every unit after its dependencies (as Hydra's
launchers receive jobs): in process, in order (``local``), or as tasks of a cluster.
Nothing here imports torch or mlflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import LthError
from ..tracking.names import TICKET, child_run_name


@dataclass(frozen=True, order=True)
class Unit:
    """One (replicate, level, branch) training of an experiment."""

    replicate: int
    level: int
    branch: str

    @property
    def name(self) -> str:
        """The child run's name, ``r0-level3-ticket``."""
        return child_run_name(self.replicate, self.level, self.branch)


@dataclass(frozen=True)
class UnitGraph:
    """An experiment's units in a dependency-respecting order, with their dependencies.

    ``units`` is level-major, as the in-process runner trains them: every replicate's
    ticket of a level, each followed by its controls, before the next level.
    """

    units: tuple[Unit, ...]
    dependencies: Mapping[Unit, tuple[Unit, ...]]

    @classmethod
    def build(cls, replicates: int, levels: int, controls: Sequence[str],
              dense_controls: bool = False) -> UnitGraph:
        """The graph of ``replicates`` x (level 0 + ``levels`` pruned levels x branches);
        ``dense_controls``: level 0 has controls too (a sparse level 0)."""
        units: list[Unit] = []
        dependencies: dict[Unit, tuple[Unit, ...]] = {}
        for level in range(levels + 1):
            for replicate in range(replicates):
                ticket = Unit(replicate, level, TICKET)
                units.append(ticket)
                dependencies[ticket] = (Unit(replicate, level - 1, TICKET),) if level else ()
                if level == 0 and not dense_controls:
                    continue
                for branch in controls:
                    control = Unit(replicate, level, branch)
                    units.append(control)
                    dependencies[control] = (ticket,)
        return cls(tuple(units), dependencies)

    def without(self, done: Iterable[Unit]) -> UnitGraph:
        """The graph left when ``done`` units already finished (a resume): they are
        dropped, and so are the edges to them, which are satisfied."""
        finished = set(done)
        units = tuple(u for u in self.units if u not in finished)
        return UnitGraph(units, {u: tuple(d for d in self.dependencies[u] if d not in finished)
                                 for u in units})

    def __len__(self) -> int:
        return len(self.units)


Execute = Callable[[Unit], Any]
"""Runs one unit and returns what it produced; ``None`` means "nothing to build on"
(a ticket that diverged and is skipped): the units that depend on it are not run."""


@dataclass
class Job:
    """One experiment for a launcher: its units and the function that runs one.

    A launcher that runs units in other processes pickles ``execute``, so it must be a
    module-level function or an instance of a module-level class holding plain data.
    ``on_done`` is called in the launching process as each unit finishes.
    """

    graph: UnitGraph
    execute: Execute
    label: str = ""
    on_done: Callable[[Unit, Any], None] | None = None


@dataclass
class Outcome:
    """What a launcher did with one job."""

    results: dict[Unit, Any] = field(default_factory=dict)
    error: BaseException | None = None  # the unit failure that stopped the job, if any
    failed: Unit | None = None  # the unit that failed for good


class Launcher:
    """Runs the units of one or more experiments, each unit after its dependencies.

    Every launcher subclasses this class and implements ``launch``; the other methods
    are what the core calls on every launcher, with no-op defaults to override:

    1. ``check_spec(spec)`` as soon as the spec is read, before data load or any run;
    2. ``start(spec)`` right after, to start what takes a while (worker processes) while
       the data loads; not called for a dry run;
    3. ``with launcher:`` around the execution, entered before any run is created, so that
       a cluster that cannot be reached fails first, and left however it ends;
    4. ``launch(jobs)`` with every experiment's units.

    A unit that fails for good stops its own job (its other units are cancelled or
    not started) and is reported in that job's ``Outcome``; the other jobs go on.
    ``KeyboardInterrupt`` stops everything and propagates once the units are stopped.
    An in-process launcher may set ``pool`` (a ``lottery.trainer.TrainingPool``): the
    runner then trains each level's networks side by side on it.
    """

    in_process: ClassVar[bool] = True  # False: units run in other processes, maybe machines
    pool: Any = None  # worker processes that train a level's networks side by side
    note: str | None = None  # one line the CLI shows as the experiment starts (workers cut)

    def check_spec(self, spec: Any) -> None:
        """Refuse (raise ``LthError``) a spec this launcher cannot run; by default none."""

    def start(self, spec: Any = None) -> None:
        """Start what takes a while, while the data loads; by default nothing."""

    def __enter__(self) -> Launcher:
        """Connect to what runs the units; by default nothing to connect to."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release what ``start`` or ``__enter__`` took; by default nothing."""

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run every job's units; one ``Outcome`` per job, in order."""
        raise NotImplementedError(f"{type(self).__name__} does not implement launch()")


class UnitFailed(LthError):
    """A unit raised: names the unit, carries a picklable reason and exit code."""

    def __init__(self, unit: str, reason: str, exit_code: int = 1):
        super().__init__(f"{unit} failed: {reason}")
        self.unit, self.reason, self.exit_code = unit, reason, exit_code

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries intact
        return (UnitFailed, (self.unit, self.reason, self.exit_code))


def run_in_order(job: Job) -> Outcome:
    """Run one job's units in graph order in this process; stop at the first failure."""
    outcome = Outcome()
    skipped: set[Unit] = set()
    for unit in job.graph.units:
        if any(dep in skipped for dep in job.graph.dependencies[unit]):
            skipped.add(unit)
            continue
        try:
            result = job.execute(unit)
        except Exception as exc:  # KeyboardInterrupt goes through
            outcome.error, outcome.failed = exc, unit
            return outcome
        outcome.results[unit] = result
        if result is None:
            skipped.add(unit)
        if job.on_done is not None:
            job.on_done(unit, result)
    return outcome
