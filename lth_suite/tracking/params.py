"""The spec as MLflow params: dotted keys, string values, names MLflow accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# What MLflow accepts in a param name; anything else (the ``*`` of a glob pattern in
# ``pruning.fraction``) is written as ``:x2a:``, its code point, and the name stays unique.
PARAM_CHARACTER = re.compile(r"[^\w\-. :/]")


def param_key(key: str) -> str:
    """A spec key as an MLflow param name may spell it."""
    return PARAM_CHARACTER.sub(lambda found: f":x{ord(found.group()):02x}:", str(key))


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
