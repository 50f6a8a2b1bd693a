"""The plugin manager: built-ins and installed plugins, loaded the same way.

Installed plugins are entry points in the group ``lth_suite``. The environment
variable ``LTH_SUITE_LOAD_PLUGINS`` (comma-separated entry-point or distribution
names) restricts which of them load; set it empty to load none.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import __version__, hookspecs
from .errors import LthError
from .registry import KINDS, Component, NoParams, Registry

ENTRY_POINT_GROUP = "lth_suite"
LOAD_ENV = "LTH_SUITE_LOAD_PLUGINS"

DEFAULT_PLUGINS = (
    "lth_suite.builtin.architectures",
    "lth_suite.builtin.datasets",
    "lth_suite.builtin.criteria",
    "lth_suite.builtin.rewinds",
    "lth_suite.builtin.analyzers",
)

_REGISTER_HOOKS = {
    "architecture": "lth_register_architectures",
    "dataset": "lth_register_datasets",
    "criterion": "lth_register_criteria",
    "rewind": "lth_register_rewinds",
    "analyzer": "lth_register_analyzers",
}


@dataclass
class PluginInfo:
    """A loaded plugin: where it comes from and what it provides."""

    name: str
    version: str
    distribution: str
    provides: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Plugins:
    """The plugin manager together with the registry its plugins filled."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: dict[str, PluginInfo]

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for lifecycle hooks."""
        return self.manager.hook

    def versions(self) -> dict[str, str]:
        """Plugin name -> version, for tagging runs."""
        return {name: info.version for name, info in sorted(self.infos.items())}


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _normalize(name: str) -> str:
    """PEP 503 form, so ``lth-foo``, ``LTH_Foo`` and ``lth.foo`` name the same plugin."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed_names() -> set[str] | None:
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {_normalize(part.strip()) for part in raw.split(",") if part.strip()}


def _installed_plugins() -> list[tuple[str, ModuleType | object, str, str]]:
    """(name, plugin object, distribution, version) for each allowed entry point."""
    allowed = _allowed_names()
    entries = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist else entry.name
        version = entry.dist.version if entry.dist else "unknown"
        if allowed is not None and not {_normalize(entry.name), _normalize(dist)} & allowed:
            continue
        entries.append((entry, dist, version))
    per_dist = Counter(dist for _, dist, _ in entries)
    found = []
    for entry, dist, version in entries:
        # A distribution may declare several entry points; each is its own plugin then.
        name = dist if per_dist[dist] == 1 else f"{dist}:{entry.name}"
        try:
            plugin = entry.load()
        except Exception as exc:  # a broken third-party install must not look like our bug
            raise LthError(f"plugin {name} ({dist} {version}): cannot load entry point "
                           f"{entry.value!r}: {type(exc).__name__}: {exc}") from None
        found.append((name, plugin, dist, version))
    return found


def load_plugins(extra: list[object] | None = None, installed: bool = True) -> Plugins:
    """Load built-ins, installed entry-point plugins and ``extra`` plugin objects.

    ``installed=False`` skips entry points (the tests use this to stay hermetic).
    """
    manager = _new_manager()
    infos: dict[str, PluginInfo] = {}
    for module_name in DEFAULT_PLUGINS:
        _add(manager, infos, importlib.import_module(module_name), module_name,
             "lth-suite", __version__)
    if installed:
        for name, plugin, dist, version in _installed_plugins():
            _add(manager, infos, plugin, name, dist, version)
    for plugin in extra or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        _add(manager, infos, plugin, name, "(in process)", "n/a")
    _check_hook_names(manager)
    registry = Registry()
    for kind in KINDS:
        _collect(manager, registry, infos, kind)
    return Plugins(manager, registry, infos)


def _add(manager: pluggy.PluginManager, infos: dict[str, PluginInfo], plugin: object,
         name: str, dist: str, version: str) -> None:
    if manager.has_plugin(name):
        raise LthError(f"plugin '{name}' is loaded twice")
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise LthError(f"plugin {name}: {exc}") from None
    except ValueError as exc:  # pluggy: the same object under a second name
        first = manager.get_name(plugin)
        raise LthError(f"plugin '{name}' is the same object as plugin '{first}'"
                       if first else f"plugin {name}: {exc}") from None
    infos[name] = PluginInfo(name=name, version=version, distribution=dist)


def _check_hook_names(manager: pluggy.PluginManager) -> None:
    """A hook implementation that matches no hookspec is a typo: fail, naming it."""
    known = sorted(name for name in vars(hookspecs) if name.startswith("lth_"))
    for name, caller in vars(manager.hook).items():
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
            raise LthError(f"plugin {impl.plugin_name}: unknown hook '{name}'{hint}")


def _collect(manager: pluggy.PluginManager, registry: Registry,
             infos: dict[str, PluginInfo], kind: str) -> None:
    """Call each plugin's register hook on its own, so every component knows its plugin."""
    caller = getattr(manager.hook, _REGISTER_HOOKS[kind])
    # get_hookimpls() lists plugins in registration order (pluggy *calls* them in
    # reverse), so a name taken by a built-in is blamed on the later third-party plugin
    for impl in caller.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(name: str, factory: Any, params_model: Any = NoParams,
                     description: str = "", _plugin: str = plugin_name) -> None:
            registry.add(Component(kind, name, factory, params_model, description, _plugin))
            infos[_plugin].provides.setdefault(kind, []).append(name)

        try:
            impl.function(register=register)
        except LthError:
            raise
        except Exception as exc:  # name the plugin whose registration broke
            raise LthError(f"plugin {plugin_name}: {impl.function.__name__} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
