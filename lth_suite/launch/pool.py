"""Units in worker processes on this machine, each unit after its dependencies.

Every worker is a fresh (spawned) Python process that trains one unit at a time and sends
back what the unit's ``execute`` returned; the launching process lands each result
(``Job.land``) before it starts anything that depends on it. Tickets go first when
several units are ready: the ticket chain of a replicate is the experiment's critical path.

A worker that dies (the OOM killer, a crash in native code) fails the unit it ran: the
unit's job stops and reports it, the other jobs go on on a fresh worker. Workers ignore
Ctrl-C; the launching process receives it, stops them all and lets it propagate.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ..tracking.names import TICKET
from ..training.threads import CONCURRENT_ENV
from .units import Job, Outcome, Unit, UnitFailed

STOP_SECONDS = 10  # a worker asked to stop that is still alive after this is terminated


def _serve(conn: Connection, concurrent: int) -> None:
    """A worker's life: receive (execute, unit), run it, send back the pickled outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launching process handles Ctrl-C
    os.environ[CONCURRENT_ENV] = str(concurrent)  # its share of the cores, for threads: auto
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        execute, unit = task
        try:
            reply = ("done", execute(unit))
        except Exception as exc:  # noqa: BLE001 - sent back, raised in the launching process
            reply = ("failed", exc if _picklable(exc) else UnitFailed(
                unit.name, f"{type(exc).__name__}: {exc}"))
        conn.send_bytes(pickle.dumps(reply))


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure means "send a plain UnitFailed"
        return False
    return True


@dataclass
class _Worker:
    process: Any  # a multiprocessing Process
    conn: Connection
    task: tuple[int, Unit] | None = None  # (job index, unit) it is running


@dataclass
class _Jobs:
    """What is left of each job: units not started, units done, jobs stopped."""

    jobs: Sequence[Job]
    outcomes: list[Outcome] = field(default_factory=list)
    waiting: list[tuple[int, Unit]] = field(default_factory=list)
    finished: list[set[Unit]] = field(default_factory=list)
    skipped: list[set[Unit]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outcomes = [Outcome() for _ in self.jobs]
        self.finished = [set() for _ in self.jobs]
        self.skipped = [set() for _ in self.jobs]
        self.waiting = [(index, unit) for index, job in enumerate(self.jobs)
                        for unit in job.graph.units]

    def next_ready(self) -> tuple[int, Unit] | None:
        """The ready unit to start next (tickets first), or None; drops units that can
        no longer run (their job stopped, or a dependency was skipped)."""
        ready: list[tuple[int, Unit]] = []
        for index, unit in list(self.waiting):
            needs = self.jobs[index].graph.dependencies[unit]
            if self.outcomes[index].error is not None or any(
                    dep in self.skipped[index] for dep in needs):
                self.waiting.remove((index, unit))
                self.skipped[index].add(unit)
            elif all(dep in self.finished[index] for dep in needs):
                ready.append((index, unit))
        if not ready:
            return None
        chosen = min(ready, key=lambda t: (t[1].branch != TICKET, t[1].level, t[0], t[1]))
        self.waiting.remove(chosen)
        return chosen

    def done(self, index: int, unit: Unit, returned: Any) -> None:
        """A unit came back: land it, record it, tell the job."""
        job, outcome = self.jobs[index], self.outcomes[index]
        try:
            result = job.result_of(returned)
        except Exception as exc:  # noqa: BLE001 - the unit's failure, kept in its outcome
            self.failed(index, unit, exc)
            return
        outcome.results[unit] = result
        (self.skipped if result is None else self.finished)[index].add(unit)
        if job.on_done is not None:
            job.on_done(unit, result)

    def failed(self, index: int, unit: Unit, error: BaseException) -> None:
        """A unit failed for good: its job stops (the first failure is the one reported)."""
        outcome = self.outcomes[index]
        if outcome.error is None:
            outcome.error, outcome.failed = error, unit


class WorkerPool:
    """Runs the units of several jobs on ``workers`` processes of this machine."""

    def __init__(self, workers: int):
        self.size = workers
        self.context = multiprocessing.get_context("spawn")  # no forked torch or mlflow state
        self.workers: list[_Worker] = []

    def _start(self) -> _Worker:
        mine, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(theirs, self.size), daemon=True,
                                       name="lth-suite-worker")
        process.start()
        theirs.close()
        return _Worker(process, mine)

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Every job's units, each after its dependencies; one ``Outcome`` per job."""
        state = _Jobs(jobs)
        try:
            while True:
                self._assign(state)
                busy = [w for w in self.workers if w.task is not None]
                if not busy:
                    return state.outcomes
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        self._collect(worker, state)
        finally:
            self.stop()

    def _assign(self, state: _Jobs) -> None:
        """Give every idle worker (started as needed) a ready unit."""
        while True:
            idle = next((w for w in self.workers if w.task is None), None)
            if idle is None and len(self.workers) >= self.size:
                return
            task = state.next_ready()
            if task is None:
                return
            if idle is None:
                idle = self._start()
                self.workers.append(idle)
            index, unit = task
            idle.task = task
            idle.conn.send((state.jobs[index].execute, unit))

    def _collect(self, worker: _Worker, state: _Jobs) -> None:
        assert worker.task is not None
        index, unit = worker.task
        try:
            kind, value = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):  # the process died mid-unit
            worker.process.join(timeout=STOP_SECONDS)
            code = worker.process.exitcode
            worker.conn.close()
            self.workers.remove(worker)
            state.failed(index, unit, UnitFailed(
                unit.name, f"its worker process died (exit code {code}); nothing of it was "
                "logged, and resuming the experiment trains it again"))
            return
        worker.task = None
        if kind == "done":
            state.done(index, unit, value)
        else:
            state.failed(index, unit, value)

    def stop(self) -> None:
        """Ask every worker to stop; terminate those that do not (a unit still running)."""
        for worker in self.workers:
            try:
                if worker.task is None:
                    worker.conn.send(None)
                else:
                    worker.process.terminate()
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(timeout=STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []
