"""A file lock beside an embedded store (``mlflow.db.lock``), for what must not interleave.

Several ``lth-suite`` processes started together in an empty folder would each create
``mlflow.db``; MLflow builds it in some thirty schema steps, and a second process meeting
a half-built file fails. Opening an embedded store and taking a run's lease happen under
this lock: the first process creates the store while the others wait, then they find it
whole. The operating system releases the lock of a process that dies, so a held lock
always means a live holder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import TrackingError

WAIT_S = 300.0  # creating a store takes seconds; a lock held this long is a stuck process


def embedded_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


@contextmanager
def store_lock(uri: str, wait_s: float = WAIT_S) -> Iterator[bool]:
    """Hold the store's file lock while the block runs; yields whether a lock is held.

    Only embedded stores have one; so has no store whose folder this process cannot
    write (a read-only copy, which nobody creates or resumes).
    """
    path = embedded_path(uri)
    if path is None or not path.parent.is_dir():
        yield False
        return
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise TrackingError(f"{path}: another process has held {path}.lock for {wait_s:.0f} s "
                            "(creating or resuming on this store); try again once it is done"
                            ) from None
    except OSError:  # a folder this process may not write: nothing is created there
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
