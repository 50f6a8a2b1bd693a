"""Worker processes of this machine that train a level's networks side by side.

Each worker is a fresh (spawned) Python process: no forked torch, OpenMP or MLflow state.
It imports the training code as soon as it starts, so that this happens while the
launching process loads the data and opens the tracking store. It then trains one item
at a time (``parallel.pooled.worker_trainer``, with the experiment it prepares from the
spec once) and sends back its evaluations as they are computed, progress ticks, and the
result. The launching process records everything: workers never touch the store.

A worker that dies (the OOM killer, a crash in native code) fails the training it ran.
Workers ignore Ctrl-C; the launching process receives it and stops them.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..errors import LthError
from ..plugins.manager import LOAD_ENV
from ..spec.loading import to_yaml
from ..training.threads import CONCURRENT_ENV
from .units import UnitFailed

if TYPE_CHECKING:  # torch and the lottery load in the workers, and when training starts
    from ..lottery.experiment import Experiment
    from ..lottery.planner import Planned
    from ..lottery.trainer import PooledResult
    from ..spec.sections import ExperimentSpec

STOP_SECONDS = 10  # a worker asked to stop that is still alive after this is terminated
START_SECONDS = 60  # how long the launching process waits to see its workers started
DONE, FAILED = "done", "failed"
WORKER_NAME = "lth-suite-worker"
UNGUARDED_EXIT = 3  # a worker's exit code when the launching script ran again in it
UNGUARDED = ("the workers could not start: each is a fresh Python process that runs the "
             "script that started it again, and this script starts an experiment when it is "
             "run; call run_experiment under `if __name__ == \"__main__\":`")
FEWER_WORKERS = ("nothing of it was logged; resume with fewer launcher.workers (--set "
                 "launcher.workers=N) to give each more memory")


def leave_if_spawning_worker() -> None:
    """Where experiments start: in a worker still being spawned, the script that started it
    is running again (multiprocessing's *spawn* re-runs the main script of a process
    without ``if __name__ == "__main__":``). That worker exits quietly with
    ``UNGUARDED_EXIT`` instead of starting workers of its own, which multiprocessing would
    refuse with a long traceback; the launching process then says what to change."""
    process = multiprocessing.current_process()
    if process.name == WORKER_NAME and getattr(process, "_inheriting", False):
        raise SystemExit(UNGUARDED_EXIT)


def _serve(conn: Connection, concurrent: int, started: Any) -> None:
    """A worker's life: import, then train the items it receives until told to stop."""
    started.set()  # spawned: the script that started it did not start an experiment here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launching process handles Ctrl-C
    os.environ[CONCURRENT_ENV] = str(concurrent)  # its share of the cores, for threads: auto
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads
    from .pooled import worker_trainer
    from .unit_worker import prepared

    trainers: dict[tuple[str, str | None], Callable[[Planned], PooledResult]] = {}

    def send(kind: str, value: Any) -> None:
        conn.send_bytes(pickle.dumps((kind, value)))

    while True:
        try:
            task = conn.recv()
        except EOFError:  # the launching process is gone
            os._exit(0)
        except Exception:  # noqa: BLE001 - e.g. no memory left to map the item's tensors
            os._exit(3)  # the launching process finds it dead and names the training
        if task is None:  # nothing to flush or close: skip the interpreter's teardown
            os._exit(0)
        spec_yaml, allowed, item = task
        try:
            key = (spec_yaml, allowed)
            if key not in trainers:
                trainers.clear()  # one experiment's model and data at a time
                trainers[key] = worker_trainer(prepared(spec_yaml, allowed), send)
            if item is None:  # prepare only, while the launching process does too
                continue
            reply: tuple[str, Any] = (DONE, trainers[key](item))
        except Exception as exc:  # noqa: BLE001 - sent back, raised in the launching process
            if item is None:  # the launching process meets the same error and reports it
                continue
            short = out_of_memory(exc)
            if short is not None:  # one line, not a traceback from another process
                reply = (FAILED, UnitFailed(item.name, f"its worker process ran out of memory "
                                                       f"({short}); {FEWER_WORKERS}"))
            else:
                reply = (FAILED, exc if _picklable(exc) else UnitFailed(
                    item.name, f"{type(exc).__name__}: {exc}"))
        send(*reply)
        if reply[0] == FAILED and isinstance(reply[1], UnitFailed) and "out of memory" in str(
                reply[1]):
            os._exit(3)  # what else it holds is in doubt: the pool starts a fresh worker


def out_of_memory(exc: BaseException) -> str | None:
    """The first line of an allocation failure (Python's or torch's), else None."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, MemoryError):
        return text or "MemoryError"
    if isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                          or "out of memory" in text.lower()):
        return text
    return None


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
    started: Any  # a multiprocessing Event, set once it runs its own code
    index: int | None = None  # the item it trains


class WorkerPool:
    """``size`` worker processes of this machine; a ``lottery.trainer.TrainingPool``."""

    def __init__(self, size: int):
        self.size = size
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []

    def start(self, spec: ExperimentSpec | None = None) -> None:
        """Start the workers that are missing, without waiting for them; with ``spec``,
        they prepare its experiment (data, model) once they have imported the code."""
        if not self.workers:
            atexit.register(self.stop)  # before multiprocessing would wait for them at exit
        warm = None if spec is None else (to_yaml(spec), os.environ.get(LOAD_ENV), None)
        while len(self.workers) < self.size:
            mine, theirs = self.context.Pipe()
            started = self.context.Event()
            process = self.context.Process(target=_serve, args=(theirs, self.size, started),
                                           name=WORKER_NAME)
            process.start()
            theirs.close()
            self.workers.append(_Worker(process, mine, started))
            if warm is not None:
                mine.send(warm)

    def check_started(self, timeout: float = START_SECONDS) -> None:
        """Wait (up to ``timeout``) until every worker runs its own code; an ``LthError``
        saying what to change when they exited because the launching script started an
        experiment again in each of them (see ``leave_if_spawning_worker``)."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            while not worker.started.is_set() and worker.process.is_alive():
                if time.monotonic() > deadline:
                    return  # slow to start: the trainings will wait for it
                worker.process.join(timeout=0.05)
            if worker.process.exitcode == UNGUARDED_EXIT:
                self.stop()
                raise LthError(UNGUARDED)

    def train(self, experiment: Experiment, items: Sequence[Planned],
              told: Callable[[int, str, Any], None],
              ) -> Iterator[tuple[int, PooledResult | BaseException]]:
        """Train every item on a worker; ``(index, outcome)`` in index order (see
        ``TrainingPool.train``). A freed worker gets the next item before a result is
        handed on, so workers train while the caller records."""
        spec_yaml, allowed = to_yaml(experiment.spec), os.environ.get(LOAD_ENV)
        waiting, outcomes, handed = list(range(len(items))), {}, 0
        try:
            while handed < len(items):
                self.start()  # in place of any that died: never wait with none at work
                for worker in list(self.workers):
                    if worker.index is None and waiting:
                        worker.index = waiting.pop(0)
                        try:
                            worker.conn.send((spec_yaml, allowed, items[worker.index]))
                        except OSError:  # it died while idle
                            self._lost(worker, items, outcomes)
                busy = [w for w in self.workers if w.index is not None]
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        self._read(worker, items, outcomes, told)
                while handed in outcomes:
                    yield handed, outcomes.pop(handed)
                    handed += 1
        finally:
            self._abandon()

    def _read(self, worker: _Worker, items: Sequence[Planned],
              outcomes: dict[int, PooledResult | BaseException],
              told: Callable[[int, str, Any], None]) -> None:
        """Everything the worker sent so far; its outcome when it finished."""
        index = worker.index
        assert index is not None
        try:
            while worker.conn.poll():
                kind, value = pickle.loads(worker.conn.recv_bytes())
                if kind in (DONE, FAILED):
                    outcomes[index], worker.index = value, None
                    return
                told(index, kind, value)
            if worker.process.is_alive():
                return
        except (EOFError, OSError):
            pass
        self._lost(worker, items, outcomes)

    def _lost(self, worker: _Worker, items: Sequence[Planned],
              outcomes: dict[int, PooledResult | BaseException]) -> None:
        """A worker that died: its training fails, naming it; another is started in its
        place."""
        index = worker.index
        assert index is not None
        worker.process.join(timeout=STOP_SECONDS)
        worker.conn.close()
        self.workers.remove(worker)
        code = worker.process.exitcode
        if code == UNGUARDED_EXIT:
            outcomes[index] = LthError(UNGUARDED)
            return
        killed = (": killed by SIGKILL, as the out-of-memory killer does"
                  if code == -signal.SIGKILL else "")
        outcomes[index] = UnitFailed(items[index].name, (
            f"its worker process died (exit code {code}{killed}); nothing of it was logged, "
            "and resuming the experiment trains it again"))

    def _abandon(self) -> None:
        """Stop the trainings still running (their results are not wanted any more)."""
        for worker in [w for w in self.workers if w.index is not None]:
            worker.process.terminate()
            worker.process.join(timeout=STOP_SECONDS)
            worker.conn.close()
            self.workers.remove(worker)

    def stop(self) -> None:
        """Ask every worker to stop; terminate those still busy (importing or preparing
        an experiment this process no longer runs) after a second: they hold nothing."""
        atexit.unregister(self.stop)
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 1.0
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []
