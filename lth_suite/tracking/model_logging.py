"""What MLflow does around logging a model that lth-suite's models do not need.

Each is a warning about something lth-suite settles itself, and two cost time. MLflow
loads every model it logs back and runs the input example through it, only to warn when
that fails: lth-suite's networks run on the example they are logged with. And before the
first model a process logs or loads, MLflow maps every installed package to its modules
(0.6 s on a quiet machine, seconds on a busy one) only to warn when the model's
requirements differ from the installed versions: lth-suite pins the running torch itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow.models.utils as mlflow_model_utils
import mlflow.utils.environment as mlflow_environment


class _PickleWarningFilter(logging.Filter):
    """Drops MLflow's warning that pickled models run code when loaded.

    ``tracking.model_format: pickle`` is a documented choice (the README says what
    loading needs, and ``pt2`` is one setting away); repeating the warning for every
    ticket of every level would bury the run's own output.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Saving pytorch model by Pickle")


@contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    logger, quiet = logging.getLogger("mlflow.pytorch"), _PickleWarningFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextmanager
def _skipped(module: object, name: str) -> Iterator[None]:
    """``module.name`` does nothing for a while (when this MLflow version has it)."""
    original = getattr(module, name, None)
    if original is None:
        yield
        return
    setattr(module, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def quiet_model_logging() -> Iterator[None]:
    """Around ``mlflow.pytorch.log_model``: no pickle warning, no reload of the model to
    check its example, no scan of the installed packages."""
    with (_quiet_pickle_warning(), _skipped(mlflow_model_utils, "_validate_serving_input"),
          _skipped(mlflow_environment, "warn_dependency_requirement_mismatches")):
        yield
