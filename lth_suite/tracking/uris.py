"""Where the tracking store is: URI resolution, server checks, safe names, the UI command."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import TrackingError

T = TypeVar("T")


def default_tracking_uri() -> str:
    """The embedded store: ``mlflow.db`` in the working directory."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None) -> str:
    """``--tracking-uri``, else the spec, else ``MLFLOW_TRACKING_URI``, else the default.

    Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the launcher's store always wins,
    because the run it created lives there.
    """
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if os.environ.get("MLFLOW_RUN_ID") and env_uri:
        return env_uri
    return cli_uri or spec_uri or env_uri or default_tracking_uri()


def safe_name(text: str) -> str:
    """A file or folder name from user input: no separators, no '..', no odd characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:100]  # paths stay short
    return cleaned.rstrip("-.") or "unnamed"


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail fast on a server that does not answer; MLflow's own retries take minutes."""
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise TrackingError(f"tracking URI {uri}: the server cannot be reached ({reason})") from None


def store_failure(error: BaseException) -> str | None:
    """One line on a store that stopped accepting writes (a full disk, a read-only or locked
    database, a server gone), if that is what stopped ``error``'s run; else None."""
    seen: BaseException | None = error
    while seen is not None:
        module = type(seen).__module__.split(".")[0]
        if isinstance(seen, OSError) or module in ("sqlite3", "sqlalchemy", "mlflow", "requests"):
            lines = str(seen).splitlines()
            return f"{type(seen).__name__}: {lines[0] if lines else 'no detail'}"
        seen = seen.__cause__ or seen.__context__
    return None


def ui_command(uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that serves the MLflow UI for ``uri``, on loopback unless told otherwise."""
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]


DEFAULT_UI = ("127.0.0.1", 5000)  # where ``lth-suite ui`` serves unless told otherwise


def ui_url(host: str, port: int, experiment_id: str | None = None,
           run_id: str | None = None) -> str:
    """The MLflow UI's page of a run, an experiment (or of them all) in its model-training
    mode.

    The MLflow 3 UI opens in its GenAI mode (traces, evaluations) unless the page's
    ``workflowType`` says otherwise or the browser remembers the sidebar's choice.
    """
    return _page(f"http://{host}:{port}", experiment_id, run_id)


def _page(base: str, experiment_id: str | None, run_id: str | None) -> str:
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    if experiment_id and run_id:
        page += f"/runs/{run_id}"
    return f"{base.rstrip('/')}/#/{page}?workflowType=machine_learning"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """The page of a run in the MLflow UI that shows the store at ``uri``: the tracking
    server's own UI, or ``lth-suite ui``'s default address for a local store."""
    if uri.startswith(("http://", "https://")):
        return _page(uri, experiment_id, run_id)
    return ui_url(*DEFAULT_UI, experiment_id, run_id)


def checked_store(uri: str, make: Callable[[str], T], verb: str) -> T:
    """``make(uri)``, once the store answers; a ``TrackingError`` naming the URI otherwise."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    from .store_lock import store_lock

    # Under the store's lock: a process creating the store finishes before another opens it,
    # and a half-built file found while holding the lock was left by a process now dead.
    with store_lock(uri):
        try:
            store: Any = make(uri)
            store.client.search_experiments(max_results=1)
        except Exception as exc:  # mlflow raises many types for a bad store
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TrackingError(_half_created(uri, first) or f"tracking URI {uri}: cannot be "
                                f"{verb} ({first})") from None
    return store


def _half_created(uri: str, problem: str) -> str | None:
    """What to do about an embedded store a kill left half-created, if ``uri`` is one.

    MLflow builds a new ``mlflow.db`` in some thirty schema steps; a process stopped midway
    leaves tables that the next start tries to create again ("already exists", "duplicate
    column"). Such a file holds no runs yet, so moving it aside loses nothing.
    """
    import sqlite3

    if not uri.startswith("sqlite:///") or not re.search(
            r"already exists|duplicate column|no such (table|column)", problem):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        runs = 0  # not even the runs table: created no further than that
    if runs:
        return None  # a store with results is never called half-created
    return (f"{path}: a half-created MLflow store with no runs (a process was stopped while "
            f"it created the store); move it aside and run again: mv {path} {path}.broken")

