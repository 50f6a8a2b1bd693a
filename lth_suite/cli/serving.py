"""A foreground server process that leaves nothing behind when stopped."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from types import FrameType

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0


def port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served (a server already listens there), or None.

    Bound and released at once, with the address reuse a server sets itself, so a port
    left in TIME_WAIT by a server that just stopped still counts as free.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{host} is not an address of this machine ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (another server listens there)"
            return f"cannot listen on {host}:{port} ({exc.strerror})"
    return None


def _stop_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass  # already gone


def serve(command: list[str]) -> int:
    """Run ``command`` until it exits or this process is told to stop; its exit code.

    The server gets a process group of its own, so its workers (MLflow's UI starts
    several) can be stopped together: Ctrl-C, SIGTERM or SIGHUP sent to this process is
    forwarded to the whole group, and whatever has not exited after a grace period is
    killed. A stop asked for by the user exits 0.
    """
    # MLflow's GenAI job runner starts seven more processes that browsing runs never uses.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(command, start_new_session=True, env=env)
    asked: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)
        _stop_group(server.pid, signal.SIGTERM)

    previous = {number: signal.signal(number, forward) for number in STOPPING}
    deadline: float | None = None
    try:
        while True:
            try:
                code = server.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if asked and deadline is None:
                    deadline = time.monotonic() + GRACE_SECONDS
                if deadline is not None and time.monotonic() > deadline:  # still there
                    _stop_group(server.pid, signal.SIGKILL)
    finally:
        _stop_group(server.pid, signal.SIGTERM)  # workers the server left behind
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0 if asked else code
