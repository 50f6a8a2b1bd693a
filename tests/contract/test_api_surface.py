"""lth_suite.api is a contract: its names, and the signature of each, are pinned.

``pinned/api.json`` holds, for every name ``lth_suite.api`` exports, what it is and its
signature (for a class, its constructor's and those of its public methods). A change to
it that this test shows must be intended: a name leaves only through a deprecated alias
(docs/deprecations.md). Regenerate for an intended change with::

    python tests/contract/test_api_surface.py > tests/pinned/api.json

and review the diff.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import lth_suite.api as api

PINNED = Path(__file__).resolve().parents[1] / "pinned" / "api.json"


def _signature(obj: Any) -> str | None:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):  # a builtin without a text signature
        return None


def _methods(cls: type) -> dict[str, str | None]:
    """Public methods (and ``__call__``) the class itself defines, with their signatures."""
    found = {}
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            found[name] = "property"
            continue
        if inspect.isfunction(value):
            found[name] = _signature(value)
    return dict(sorted(found.items()))


def describe(obj: Any) -> dict[str, Any]:
    """What a name of the API is, as plain data that a signature change alters."""
    if inspect.isclass(obj):
        entry: dict[str, Any] = {"kind": "class"}
        if getattr(obj, "_is_protocol", False):
            entry["kind"] = "protocol"  # a protocol's constructor is not its contract
        else:
            entry["signature"] = _signature(obj)
        fields = getattr(obj, "model_fields", None)  # a pydantic model
        if isinstance(fields, dict):
            entry["fields"] = sorted(fields)
        methods = _methods(obj)
        if methods:
            entry["methods"] = methods
        return entry
    if isinstance(obj, (types.GenericAlias, typing._GenericAlias)):
        return {"kind": "type alias", "value": repr(obj)}
    if callable(obj):
        return {"kind": "function", "signature": _signature(obj)}
    return {"kind": type(obj).__name__}


def surface() -> dict[str, Any]:
    """Every exported name of lth_suite.api, described."""
    return {name: describe(getattr(api, name)) for name in sorted(api.__all__)}


def test_the_api_surface_is_pinned():
    pinned = json.loads(PINNED.read_text())
    actual = json.loads(json.dumps(surface()))
    assert sorted(actual) == sorted(pinned), (
        "lth_suite.api's names changed: a removed name needs a deprecated alias "
        "(docs/deprecations.md); regenerate tests/pinned/api.json for an intended change")
    changed = {name: (pinned[name], actual[name]) for name in pinned
               if pinned[name] != actual[name]}
    assert not changed, (
        "signatures in lth_suite.api changed; regenerate tests/pinned/api.json if intended: "
        f"{json.dumps(changed, indent=1)}")


def test_the_pinned_surface_describes_real_signatures():
    """The snapshot is not vacuous: functions and classes carry their parameters."""
    pinned = json.loads(PINNED.read_text())
    assert pinned["keep_top"]["kind"] == "function"
    assert pinned["keep_top"]["signature"].startswith("(scores")
    assert pinned["lazy"]["signature"] == "(target: 'str') -> 'LazyFactory'"
    assert pinned["Criterion"]["kind"] == "protocol" and "__call__" in pinned["Criterion"]["methods"]


if __name__ == "__main__":
    sys.stdout.write(json.dumps(surface(), indent=1, sort_keys=True) + "\n")
