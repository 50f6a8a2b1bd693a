"""MLflow tracking: this package is the only part of lth-suite that imports mlflow."""

from .reader import RunRecord, StoreReader, open_reader
from .uris import default_tracking_uri, resolve_tracking_uri, safe_name, ui_command
from .writer import TAG_PREFIX, Tracker, flatten, open_tracker

__all__ = ["TAG_PREFIX", "RunRecord", "StoreReader", "Tracker", "default_tracking_uri", "flatten",
           "open_reader", "open_tracker", "resolve_tracking_uri", "safe_name", "ui_command"]
