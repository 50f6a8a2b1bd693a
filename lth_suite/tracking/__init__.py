"""MLflow tracking: this package is the only part of lth-suite that imports mlflow.

Its names resolve lazily, so ``lth_suite.tracking.names`` (the store's vocabulary) is
importable without loading mlflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .params import flatten
    from .reader import RunRecord, StoreReader, open_reader
    from .uris import (
        default_tracking_uri,
        resolve_tracking_uri,
        run_url,
        safe_name,
        ui_command,
        ui_url,
    )
    from .writer import Tracker, open_tracker

_WHERE = {
    "RunRecord": "reader", "StoreReader": "reader", "open_reader": "reader",
    "default_tracking_uri": "uris", "resolve_tracking_uri": "uris", "safe_name": "uris",
    "ui_command": "uris", "ui_url": "uris", "run_url": "uris",
    "Tracker": "writer", "flatten": "params", "open_tracker": "writer",
}
__all__ = ["RunRecord", "StoreReader", "Tracker", "default_tracking_uri", "flatten",
           "open_reader", "open_tracker", "resolve_tracking_uri", "run_url", "safe_name",
           "ui_command", "ui_url"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
