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
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    return cleaned or "unnamed"


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """Fail fast on a server that does not answer; MLflow's own retries take minutes."""
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise TrackingError(f"tracking URI {uri}: the server cannot be reached ({reason})") from None


def ui_command(uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that serves the MLflow UI for ``uri``, on loopback unless told otherwise."""
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]


def ui_url(host: str, port: int, experiment_id: str | None = None) -> str:
    """The MLflow UI's page of an experiment (or of them all) in its model-training mode.

    The MLflow 3 UI opens in its GenAI mode (traces, evaluations) unless the page's
    ``workflowType`` says otherwise or the browser remembers the sidebar's choice.
    """
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"http://{host}:{port}/#/{page}?workflowType=machine_learning"


def checked_store(uri: str, make: Callable[[str], T], verb: str) -> T:
    """``make(uri)``, once the store answers; a ``TrackingError`` naming the URI otherwise."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    try:
        store: Any = make(uri)
        store.client.search_experiments(max_results=1)
    except Exception as exc:  # mlflow raises many types for a bad store
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackingError(f"tracking URI {uri}: cannot be {verb} ({first})") from None
    return store
