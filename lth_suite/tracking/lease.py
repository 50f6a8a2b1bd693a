"""One process at a time runs an experiment: a lease recorded on its parent run.

Two resumes of one parent run would both train what is missing and log it twice. The
process that creates or resumes a parent run records a lease on it (a tag naming its
host, pid and start time) and removes it when the parent run ends. A second process
finds a live lease and is refused with one line naming the holder. A lease whose
process is gone is taken over: on the same host the pid is checked (with the process's
start time, so a reused pid is not mistaken for the holder); a lease from another host
is renewed with every child run the holder starts, and is stale once it has not been
renewed for ``STALE_AFTER_S``.

On an embedded store (``sqlite:///``) reading and writing the lease happen under the
store's file lock (``tracking.store_lock``), so two processes cannot both find it free.
On a server, each process writes its lease, waits ``SETTLE_S`` and reads it back: of two
writes that crossed, both read the later one, and only its writer goes on.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..errors import TrackingError
from .names import LEASE_TAG
from .store_lock import store_lock

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

STALE_AFTER_S = 6 * 3600  # a lease from another host not renewed for this long is stale
RENEW_S = 600  # how often the holder renews it: a write per ten minutes at most
SETTLE_S = 2.0  # on a server: how long crossing writes of the lease may take to settle


class LeaseHeld(TrackingError):
    """Another live process runs (or resumes) this experiment."""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class Lease:
    """Who holds the experiment: host, pid, the pid's start time, since when, a token."""

    host: str
    pid: int
    started: str | None
    since: float
    renewed: float
    token: str

    @classmethod
    def mine(cls) -> Lease:
        """A lease for this process."""
        now = time.time()
        return cls(socket.gethostname(), os.getpid(), _started(os.getpid()), now, now,
                   uuid.uuid4().hex)

    @classmethod
    def parse(cls, text: str | None) -> Lease | None:
        """The lease a tag holds; None for no tag or one that is not a lease."""
        try:
            return cls(**json.loads(text)) if text else None
        except (ValueError, TypeError):
            return None

    def dump(self) -> str:
        """The tag's value."""
        return json.dumps(asdict(self), sort_keys=True)

    def this_process(self) -> bool:
        """Whether this process holds it (a sweep's experiments, one after another)."""
        return (self.host, self.pid) == (socket.gethostname(), os.getpid())

    def alive(self) -> bool:
        """Whether the holder may still be running."""
        if self.host != socket.gethostname():
            return time.time() - self.renewed < STALE_AFTER_S
        if self.pid == os.getpid():
            return True  # this process (a token of its own is checked by the caller)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process: it exists
        return self.started is None or _started(self.pid) in (None, self.started)

    def describe(self) -> str:
        """``host pid N since TIME`` for the messages."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"{self.host} pid {self.pid} since {since}"


def _current(client: MlflowClient, run_id: str, unfinished: bool = False) -> Lease | None:
    run = client.get_run(run_id)
    if unfinished and run.info.status == "FINISHED":
        raise LeaseHeld(f"run {run_id} already finished (another process resumed it while "
                        "this one started): nothing to resume")
    return Lease.parse(run.data.tags.get(LEASE_TAG))


def _refusal(run_id: str, holder: Lease) -> LeaseHeld:
    return LeaseHeld(f"run {run_id} is being run by another process ({holder.describe()}); "
                     "only one process may run or resume an experiment at a time: wait for "
                     "it to end, or stop it and resume again")


def check_free(client: MlflowClient, run_id: str) -> None:
    """``LeaseHeld`` when another live process holds the lease of ``run_id``: asked before
    a resume loads its data, so that it is refused at once (``acquire`` decides)."""
    holder = _current(client, run_id)
    if holder is not None and holder.alive() and not holder.this_process():
        raise _refusal(run_id, holder)


def acquire(client: MlflowClient, uri: str, run_id: str, unfinished: bool = False) -> Lease:
    """Record this process's lease on parent run ``run_id``; ``LeaseHeld`` when another
    live process holds it (or, with ``unfinished``, when the run has finished). A lease
    of a process that is gone is taken over."""
    mine = Lease.mine()
    with store_lock(uri) as atomic:
        holder = _current(client, run_id, unfinished)
        if holder is not None and holder.alive() and not holder.this_process():
            raise _refusal(run_id, holder)
        client.set_tag(run_id, LEASE_TAG, mine.dump())
    if not atomic:  # a server: two writes may have crossed; the later one wins
        time.sleep(SETTLE_S)
        holder = _current(client, run_id)
        if holder is not None and holder.token != mine.token:
            raise _refusal(run_id, holder)
    return mine


def claim(client: MlflowClient, run_id: str) -> Lease:
    """Record this process's lease on a parent run it has just created: no other process
    knows the run yet, so there is nothing to wait for."""
    mine = Lease.mine()
    client.set_tag(run_id, LEASE_TAG, mine.dump())
    return mine


def renew_if_due(client: MlflowClient, run_id: str, lease: Lease | None) -> Lease | None:
    """The lease, renewed when ``RENEW_S`` have passed, so other hosts see its holder lives."""
    if lease is None or time.time() - lease.renewed < RENEW_S:
        return lease
    renewed = Lease(lease.host, lease.pid, lease.started, lease.since, time.time(), lease.token)
    client.set_tag(run_id, LEASE_TAG, renewed.dump())
    return renewed


def release(client: MlflowClient, run_id: str, lease: Lease) -> None:
    """Remove this process's lease, unless another process has taken it over since."""
    try:
        holder = _current(client, run_id)
        if holder is not None and holder.token == lease.token:
            client.delete_tag(run_id, LEASE_TAG)
    except Exception:
        pass  # a store that stopped answering: the lease is stale once this process is gone
