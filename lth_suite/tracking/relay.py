"""Writes made in one process, replayed by another: one writer for a SQLite store.

A worker process of the ``local`` launcher trains a unit with a ``RecordingTracker``:
it reads the store as any tracker does (the checkpoints a unit starts from), but every
write is kept, in order, instead of sent. The driver process replays the writes through
its own ``Tracker`` once the unit is done, so it stays the store's only writer and the
embedded ``mlflow.db`` needs no server. A unit whose process dies has written nothing,
so a resume simply trains it again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .writer import Tracker

# The Tracker methods that write, and so are recorded rather than sent.
RECORDED = ("log_params", "log_history", "log_evaluations", "log_metrics", "log_json",
            "log_training_artifacts", "log_model", "log_files", "set_tag")
PENDING_PREFIX = "pending-"  # the stand-in id of a child run not created yet


@dataclass(frozen=True)
class Write:
    """One recorded Tracker call; ``returns`` is the stand-in run id a ``start_child`` gave."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    returns: str | None = None


class RecordingTracker(Tracker):
    """A ``Tracker`` that reads the store but records its writes for ``replay``.

    Arguments are deep-copied when recorded: the caller goes on changing its model and
    tensors after a call, and the replay must see them as they were.
    """

    def __init__(self, uri: str):
        super().__init__(uri)
        self.writes: list[Write] = []

    def start_child(self, name: str, params: Mapping[str, Any]) -> str:
        """A stand-in id for the child run the replay creates."""
        stand_in = f"{PENDING_PREFIX}{len(self.writes)}"
        self.writes.append(Write("start_child", (name, dict(params)), returns=stand_in))
        self._open.append(stand_in)
        return stand_in

    def end_run(self, run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
        """Record the end of a child run this tracker started."""
        if run_id in self._open:
            self._open.remove(run_id)
            self.writes.append(Write("end_run", (run_id, status, reason)))

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.writes.append(Write(method, copy.deepcopy(args), copy.deepcopy(kwargs)))


def _recorder(method: str) -> Any:
    def record(self: RecordingTracker, *args: Any, **kwargs: Any) -> None:
        self._record(method, *args, **kwargs)

    record.__name__ = method
    record.__doc__ = f"Record ``Tracker.{method}`` for the replay."
    return record


for _method in RECORDED:
    setattr(RecordingTracker, _method, _recorder(_method))


def replay(tracker: Tracker, writes: list[Write]) -> dict[str, str]:
    """Make the recorded calls through ``tracker``, in order; stand-in ids to real ones."""
    ids: dict[str, str] = {}

    def real(value: Any) -> Any:
        return ids.get(value, value) if isinstance(value, str) else value

    for write in writes:
        args = tuple(real(arg) for arg in write.args)
        if write.method == "start_child":
            ids[write.returns or ""] = tracker.start_child(*args)
        else:
            getattr(tracker, write.method)(*args, **dict(write.kwargs))
    return ids
