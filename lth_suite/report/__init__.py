"""Reports: paper-style figures, statistics and ``summary.md`` read back from the store.

``from lth_suite.report import report`` is the Python API (``writer.report``); it loads
on first use, so importing the package imports neither matplotlib nor mlflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .writer import report

__all__ = ["report"]


def __getattr__(name: str) -> Any:
    if name == "report":
        from .writer import report

        return report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
