"""How many worker processes this machine can take: cores and memory, as they are now.

A worker is a whole Python process with torch loaded and the experiment's data prepared;
each trains with at least one core. More workers than cores only share them (slower than
in process, as each also pays its start), and more than the memory holds end in the
out-of-memory killer. So the ``local`` launcher's ``workers`` is cut to what fits:

- cores: this process's CPU affinity, within the cgroup's CPU quota (a container's
  ``--cpus``); ``auto`` counts only the cores free now, those less the load average;
- memory: what is available (``MemAvailable``, within the cgroup's limit), at
  ``WORKER_BYTES`` per worker.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..resources import cgroup_room, system_available

WORKER_BYTES = 512 << 20  # one worker: the interpreter, torch and a small experiment's data
GIB = 1 << 30


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_quota() -> float | None:
    """The cgroup's CPU quota in cores (cgroup v2 ``cpu.max``, or v1), None without one."""
    v2 = _read("/sys/fs/cgroup/cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period):
            return int(quota) / int(period)
        return None
    quota, period = (_read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                     _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    if quota and period and quota.lstrip("-").isdigit() and period.isdigit():
        if int(quota) > 0 and int(period) > 0:
            return int(quota) / int(period)
    return None


def allowed_cores() -> int:
    """The cores this process may use: its affinity, within the cgroup's quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS)
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def load() -> float:
    """The one-minute load average (runnable processes), 0 where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def available_memory() -> int | None:
    """Bytes the workers may still take: the system's available memory, within the
    cgroup's room (``builtin.resources``); None where neither is known."""
    found = [room for room in (system_available(), cgroup_room()) if room is not None]
    return min(found) if found else None


@dataclass(frozen=True)
class Capacity:
    """How many workers fit, and the one line that says why when ``workers`` was cut."""

    workers: int
    note: str | None


def workers_that_fit(asked: int | None) -> Capacity:
    """``asked`` workers (None: ``auto``) bounded by the cores and the memory."""
    cores, busy, memory = allowed_cores(), load(), available_memory()
    by_memory = None if memory is None else max(1, memory // WORKER_BYTES)
    memory_text = ("" if memory is None else
                   f", {memory / GIB:.1f} GiB memory available for "
                   f"{by_memory} worker(s) of ~{WORKER_BYTES / GIB:.1f} GiB")
    if asked is None:
        free = max(0, math.floor(cores - busy + 0.5))
        count = max(1, min(free, by_memory or free))  # none free: this process trains
        where = "in this process" if count == 1 else f"on {count} worker processes"
        return Capacity(count, f"launcher.workers: auto: trainings run {where} ({free} of "
                               f"{cores} core(s) free at load {busy:.1f}{memory_text})")
    count = min(asked, cores, by_memory or asked)
    if count == asked:
        return Capacity(count, None)
    return Capacity(count, f"launcher.workers: {asked} cut to {count} ({cores} usable "
                           f"core(s){memory_text})")
