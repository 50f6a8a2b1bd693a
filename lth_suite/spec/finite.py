"""Numbers in a plugin's params are finite unless its field says otherwise.

The core's sections refuse ``.inf`` and ``.nan`` (``Strict``); a plugin's params model
is written by its author, who rarely thinks of them. An infinite ``power`` or an
unbounded ``num_cpus_per_unit`` validates there, then fails far from the spec (or, worse,
silently does nothing). So every plugin's raw params are checked here, before its model
sees them, and refused with one line naming the field; a field that means to take them
says so with ``Field(allow_inf_nan=True)`` (or its model's ``allow_inf_nan=True``).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel


def _allowed(model: type[BaseModel], field: str) -> bool:
    if model.model_config.get("allow_inf_nan") is True:
        return True
    info = model.model_fields.get(field)
    return info is not None and any(getattr(m, "allow_inf_nan", None) is True
                                    for m in info.metadata)


def _walk(value: Any, where: list[str]) -> list[tuple[list[str], float]]:
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, value)]
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _walk(v, [*where, str(k)])]
    if isinstance(value, (list, tuple)):
        return [hit for i, v in enumerate(value) for hit in _walk(v, [*where, str(i)])]
    return []


def non_finite(params: dict[str, Any], model: type[BaseModel], path: str,
               ) -> list[tuple[str, str]]:
    """(field, problem) for each infinite or NaN number in ``params`` that ``model`` does
    not declare it takes."""
    return [(".".join([path, *where]), f"must be a finite number, got {value}")
            for where, value in _walk(params, [])
            if not _allowed(model, where[0])]
