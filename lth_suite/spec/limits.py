"""Checks over a whole resolved spec that pydantic's per-field types let through.

Pydantic's lax mode turns ``true`` into ``1`` and accepts integers of any size; plugin params
models are written by third parties and cannot be trusted to forbid either. Comparing the
YAML as written with the resolved spec catches both for every section and every plugin.
"""

from __future__ import annotations

from typing import Any

INT64_MAX = 2**63 - 1  # torch seeds, tensor sizes and MLflow integer params stop here


def _walk(raw: Any, resolved: Any, path: tuple[str, ...]) -> list[tuple[str, str]]:
    where = ".".join(path)
    if isinstance(raw, bool) and not isinstance(resolved, bool) and isinstance(resolved,
                                                                               (int, float)):
        return [(where, "expected a number, got a boolean")]
    if isinstance(resolved, int) and not isinstance(resolved, bool) and abs(resolved) > INT64_MAX:
        return [(where, f"an integer of {len(str(abs(resolved)))} digits is too large "
                         f"(at most {INT64_MAX})")]
    if isinstance(resolved, dict):
        raw_map = raw if isinstance(raw, dict) else {}
        return [problem for key, value in resolved.items()
                for problem in _walk(raw_map.get(key), value, (*path, str(key)))]
    if isinstance(resolved, list):
        raw_list = raw if isinstance(raw, list) and len(raw) == len(resolved) else [None] * len(
            resolved)
        return [problem for i, (r, v) in enumerate(zip(raw_list, resolved))
                for problem in _walk(r, v, (*path, str(i)))]
    return []


def beyond_limits(raw: dict[str, Any], resolved: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for each boolean read as a number and each integer beyond int64."""
    return _walk(raw, resolved, ())
