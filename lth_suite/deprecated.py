"""Old import paths that still work, each name warning where to import it from now.

The table below is the one place that lists them (docs/deprecations.md shows it to
users). An old module that no longer exists is a two-line alias module at its old path
(``lth_suite/masks.py``); an old module path that is now a package (``lth_suite.pruning``)
gets the same ``__getattr__`` in its ``__init__``. Either way, accessing an old name
emits a ``DeprecationWarning`` naming the new import and returns the very object
``lth_suite.api`` exports.

This module imports nothing from lth-suite but its version, and an alias imports the
name from the module that defines it (the module ``lth_suite.api`` takes it from), on
first access: ``lth_suite.pruning`` and ``lth_suite.training`` stay below ``lth_suite.api``
in the layers import-linter holds, and importing them stays as cheap as before.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

from . import __version__

API = "lth_suite.api"


def removal_version(version: str = __version__) -> str:
    """The release that drops the aliases of this one: the next minor version."""
    major, minor = (int(part) for part in version.split(".")[:2])
    return f"{major}.{minor + 1}.0"


# old module -> old name -> the module that defines it now. Every name here is exported
# by lth_suite.api (tests/plugins/test_deprecated.py checks it is the same object), except
# those in NOT_API.
ALIASES: dict[str, dict[str, str]] = {
    "lth_suite.hookspecs": {"hookimpl": "lth_suite.plugins.hookspecs"},
    "lth_suite.registry": dict.fromkeys(("NoParams", "RegisterFn", "LazyFactory", "lazy"),
                                        "lth_suite.plugins.registry"),
    "lth_suite.masks": dict.fromkeys(("Layer", "Mask", "keep_top", "prunable_layers"),
                                     "lth_suite.pruning.masks"),
    "lth_suite.pruning": dict.fromkeys(("Group", "PruneRequest", "target_groups"),
                                       "lth_suite.pruning.targets"),
    "lth_suite.rewinding": dict.fromkeys(("State", "RewindContext", "RewindPoint", "Rewind"),
                                         "lth_suite.lottery.rewinding"),
    "lth_suite.events": dict.fromkeys(("BranchResult", "LevelFinished", "ExperimentFinished"),
                                      "lth_suite.lottery.events"),
    "lth_suite.training": {"TrainConfig": "lth_suite.training.config",
                           "TrainResult": "lth_suite.training.result"},
    "lth_suite.analysis": dict.fromkeys(("Analysis", "Analyzer"), "lth_suite.lottery.analyzers"),
    "lth_suite.data": {**dict.fromkeys(("DataInfo", "RawData", "Splits"),
                                       "lth_suite.training.data"),
                       "DatasetParams": "lth_suite.plugins.params"},
    "lth_suite.launching": dict.fromkeys(("Unit", "UnitGraph", "Job", "Outcome", "Launcher",
                                          "UnitFailed", "run_in_order"),
                                         "lth_suite.parallel.units"),
    # Documented until the parallel/ folder and spec/sections.py took their contents.
    "lth_suite.launch.units": dict.fromkeys(("Unit", "UnitGraph", "Job", "Outcome", "Launcher",
                                             "UnitFailed", "run_in_order", "Execute"),
                                            "lth_suite.parallel.units"),
    "lth_suite.spec.model": {"ExperimentSpec": "lth_suite.spec.sections"},
}

# (old module, name) -> where to import it now, for the few old names a plugin's tests
# used that are helpers of lth-suite rather than plugin API.
NOT_API: dict[tuple[str, str], str] = {
    ("lth_suite.pruning", "target_groups"): "lth_suite.pruning.targets",
}


def new_import(module: str, name: str) -> str:
    """The module to import ``module.name`` from now."""
    return NOT_API.get((module, name), API)


def message(module: str, name: str) -> str:
    """The warning an old path gives: what to import instead, and when the alias goes."""
    return (f"{module}.{name} is deprecated: import it from {new_import(module, name)}; "
            f"the alias goes in version {removal_version()}")


def aliases(module: str) -> Callable[[str], Any]:
    """The PEP 562 ``__getattr__`` of an old module path: its old names, with a warning."""
    table = ALIASES[module]

    def __getattr__(name: str) -> Any:
        home = table.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(message(module, name), DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)

    return __getattr__
