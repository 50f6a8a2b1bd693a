"""Built-in plugins: registered through the same hooks as third-party ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def moved(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for names that moved to torch-using modules.

    The hook modules import no torch; what their torch modules define is still reachable
    through them (``architectures.MLP``), imported on first use. ``names`` maps each name
    to the submodule of ``module`` that holds it.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{module}.{names[name]}"), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
