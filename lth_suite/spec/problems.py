"""Pydantic validation errors as the spec's one-line problems: (field path, message)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError


def dotted(parts: Sequence[Any]) -> str:
    """``training.lr``: a field's path as the spec writes it."""
    return ".".join(str(p) for p in parts)


def problems_of(error: ValidationError, prefix: Sequence[Any] = ()) -> list[tuple[str, str]]:
    """Each error of ``error`` as (field path under ``prefix``, a message a user reads)."""
    problems = []
    for item in error.errors():
        loc = [p for p in item["loc"] if p not in ("params", "patterns")]  # both written flat
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] in ("model_type", "dict_type"):  # not "instance of Training"
            what = ("a name or a mapping of fields"
                    if item.get("ctx", {}).get("class_name") in ("ComponentSpec", "ModelSpec")
                    else "a mapping of fields")
            message = f"expected {what}, got {yaml_type(item['input'])}"
        elif item["type"] == "value_error":  # pydantic prefixes "Value error, "
            message = str(item.get("ctx", {}).get("error", message)) or message
        problems.append((dotted([*prefix, *loc]), message))
    return problems


def yaml_type(value: Any) -> str:
    """What a YAML value is, in words: ``a string``, ``a list``."""
    names = {type(None): "nothing (null)", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", list: "a list"}
    return names.get(type(value), type(value).__name__)
