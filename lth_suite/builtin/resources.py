"""How much memory this process may still take: what the built-in datasets and the local
launcher check before they decompress a file or start workers.

Three limits apply, and the smallest is what counts: the memory the system has available
(``MemAvailable``), the room left under the cgroup's limit (a container's ``--memory``),
and the room left under this process's address-space limit (``ulimit -v``,
``RLIMIT_AS``), which a process meets as a ``MemoryError`` rather than the OOM killer.
"""

from __future__ import annotations

import os
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def system_available() -> int | None:
    """``MemAvailable`` in bytes, None where unknown."""
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def cgroup_room() -> int | None:
    """Bytes left under the cgroup's memory limit (v2), None without one."""
    limit, used = _read("/sys/fs/cgroup/memory.max"), _read("/sys/fs/cgroup/memory.current")
    if limit and limit.isdigit() and used and used.isdigit():
        return max(0, int(limit) - int(used))
    return None


def address_space_room() -> int | None:
    """Bytes left under this process's ``RLIMIT_AS``, None when it has none."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    statm = _read("/proc/self/statm")
    used = int(statm.split()[0]) * os.sysconf("SC_PAGE_SIZE") if statm else 0
    return max(0, soft - used)


def memory_room() -> tuple[int, str] | None:
    """The smallest of the three limits, in bytes, and its name; None where none is known."""
    found = [(room, name) for room, name in (
        (system_available(), "the memory available"),
        (cgroup_room(), "the cgroup's memory limit"),
        (address_space_room(), "this process's address-space limit (RLIMIT_AS)"))
        if room is not None]
    return min(found) if found else None
