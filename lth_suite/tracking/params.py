"""The spec as MLflow params: dotted keys, string values, names MLflow accepts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .names import param_key


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys to string values; lists stay JSON, as MLflow params are strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{param_key(key)}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value if isinstance(value, str) else json.dumps(value)
    return flat
