"""The plugin manager: built-ins and installed plugins, loaded the same way.

Installed plugins are entry points in the group ``lth_suite``. The environment
variable ``LTH_SUITE_LOAD_PLUGINS`` (comma-separated entry-point or distribution
names) restricts which of them load; set it empty to load none.

An installed plugin that fails to import, or raises while registering, is isolated:
it is listed as broken, a warning naming it goes to stderr, and only specs that use
it fail. What it would have provided comes from the static entry-point group
``lth_suite.provides`` (``"criterion:snip" = "my_package"``), which needs no import.
Mistakes a plugin's own test finds at once (a misspelled hook, a bad hook argument,
a component name registered twice by the same plugin) stay hard errors.

Every component answers to ``PLUGIN:NAME``, PLUGIN being the name this manager gives
its plugin: the built-in module (``lth_suite.builtin.criteria:lamp``), the distribution
of an installed plugin (``lth-suite-pai:snip``; ``dist:entry-point`` when a distribution
declares several), or the ``__name__`` of an in-process one. Two plugins may register
the same name: the registry records the clash (``Registry.clashes``), ``lth-suite
plugins`` shows it as a warning, and only a spec that uses the bare name fails.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from .. import __version__
from ..errors import LthError
from . import hookspecs
from .registry import KINDS, Clash, Component, NoParams, Registry

if TYPE_CHECKING:  # plugin loading imports no torch
    from pydantic import BaseModel

    from ..pruning.prunable import PrunableModule
    from .params import ModelDataConfig

ENTRY_POINT_GROUP = "lth_suite"
PROVIDES_GROUP = "lth_suite.provides"
LOAD_ENV = "LTH_SUITE_LOAD_PLUGINS"

DEFAULT_PLUGINS = (
    "lth_suite.builtin.architectures",
    "lth_suite.builtin.datasets",
    "lth_suite.builtin.criteria",
    "lth_suite.builtin.rewinds",
    "lth_suite.builtin.analyzers",
    "lth_suite.builtin.launchers",
    "lth_suite.builtin.sparsity",
    "lth_suite.builtin.formats",
    "lth_suite.builtin.controls",
    "lth_suite.builtin.recipes",
    "lth_suite.builtin.tasks",
)

_REGISTER_HOOKS = {
    "architecture": "lth_register_architectures",
    "dataset": "lth_register_datasets",
    "criterion": "lth_register_criteria",
    "rewind": "lth_register_rewinds",
    "analyzer": "lth_register_analyzers",
    "launcher": "lth_register_launchers",
    "allocation": "lth_register_allocations",
    "dynamic": "lth_register_dynamic_sparsity",
    "format": "lth_register_formats",
    "control": "lth_register_controls",
    "optimizer": "lth_register_optimizers",
    "schedule": "lth_register_schedules",
    "task": "lth_register_tasks",
}


@dataclass
class PluginInfo:
    """A loaded plugin: where it comes from and what it provides."""

    name: str
    version: str
    distribution: str
    provides: dict[str, list[str]] = field(default_factory=dict)
    status: str = "ok"  # "ok", or "broken": an installed plugin that failed to load
    error: str | None = None  # why it is broken


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
        """Plugin name -> version of the plugins that loaded, for tagging runs."""
        return {name: info.version for name, info in sorted(self.infos.items())
                if info.status == "ok"}

    def clashes(self) -> list[Clash]:
        """Component names that several plugins registered (usable only qualified)."""
        return self.registry.clashes()

    def prunable_modules(self) -> list[PrunableModule]:
        """The module types the plugins declare prunable, later-loaded plugins first."""
        return [d for declared in self.manager.hook.lth_prunable_modules() for d in declared]

    def model_data_config(self, params: BaseModel) -> ModelDataConfig | None:
        """The input the model of ``params`` expects, as its plugin states it, or None."""
        return self.manager.hook.lth_model_data_config(params=params)

    def broken(self) -> list[PluginInfo]:
        """Installed plugins that failed to load, in load order."""
        return [info for info in self.infos.values() if info.status == "broken"]


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


@dataclass
class _Installed:
    """One allowed entry point: the loaded plugin object, or why it failed to import."""

    name: str
    distribution: str
    version: str
    plugin: object = None
    error: str | None = None


def _installed_plugins() -> list[_Installed]:
    """Each allowed entry point, imported; one that fails to import carries its error."""
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
            found.append(_Installed(name, dist, version, plugin=entry.load()))
        except Exception as exc:  # a broken third-party install must not stop the others
            found.append(_Installed(name, dist, version, error=(
                f"cannot import entry point {entry.value!r}: {type(exc).__name__}: {exc}")))
    return found


def declared_provides(distribution: str) -> dict[str, list[str]] | None:
    """What a distribution declares it provides in ``lth_suite.provides``; None if nothing.

    Entry names are ``kind:name`` (``criterion:snip``); read without importing anything.
    """
    declared: dict[str, list[str]] = {}
    found = False
    for entry in metadata.entry_points(group=PROVIDES_GROUP):
        if entry.dist is None or _normalize(entry.dist.name) != _normalize(distribution):
            continue
        found = True
        kind, sep, name = entry.name.partition(":")
        if sep and kind.strip() in KINDS and name.strip():
            declared.setdefault(kind.strip(), []).append(name.strip())
    return declared if found else None


def load_plugins(extra: list[object] | None = None, installed: bool = True,
                 warn: bool = True) -> Plugins:
    """Load built-ins, installed entry-point plugins and ``extra`` plugin objects.

    ``installed=False`` skips entry points (the tests use this to stay hermetic).
    An installed plugin that fails to import or raises while registering is listed
    as broken (and, with ``warn``, named in a warning on stderr) instead of stopping
    everything; ``extra`` plugins are never isolated, so their tests fail loudly.
    """
    manager = _new_manager()
    infos: dict[str, PluginInfo] = {}
    for module_name in DEFAULT_PLUGINS:
        _add(manager, infos, importlib.import_module(module_name), module_name,
             "lth-suite", __version__)
    isolated: set[str] = set()
    if installed:
        for item in _installed_plugins():
            if item.error is not None:
                infos[item.name] = PluginInfo(item.name, item.version, item.distribution,
                                              status="broken", error=item.error)
                continue
            _add(manager, infos, item.plugin, item.name, item.distribution, item.version)
            isolated.add(item.name)
    for plugin in extra or []:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        _add(manager, infos, plugin, name, "(in process)", "n/a")
    _check_hook_names(manager)
    registry = Registry()
    for kind in KINDS:
        _collect(manager, registry, infos, kind, isolated)
    for info in infos.values():
        if info.status == "broken":
            _record_broken(registry, info)
            if warn:
                where = "" if info.name == info.distribution else f" ({info.distribution})"
                sys.stderr.write(f"warning: plugin {info.name}{where} {info.version} failed to "
                                 f"load and is disabled: {info.error}\n")
    return Plugins(manager, registry, infos)


def _record_broken(registry: Registry, info: PluginInfo) -> None:
    """Tell the registry what a broken plugin provides, as far as anyone knows."""
    declared = declared_provides(info.distribution)
    for kind, names in (declared or {}).items():
        known = info.provides.setdefault(kind, [])
        known += [name for name in names if name not in known]
    registry.mark_unavailable(
        info.name, info.error or "unknown error",
        [(kind, name) for kind, names in info.provides.items() for name in names],
        complete=declared is not None)


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
             infos: dict[str, PluginInfo], kind: str, isolated: set[str]) -> None:
    """Call each plugin's register hook on its own, so every component knows its plugin.

    A plugin in ``isolated`` (an installed one) that raises is marked broken: its
    components, of every kind, leave the registry and its hooks are unregistered.
    """
    caller = getattr(manager.hook, _REGISTER_HOOKS[kind])
    # get_hookimpls() lists plugins in registration order (pluggy *calls* them in
    # reverse), so the registry lists the components of a clashing name in load order
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
            error = f"{impl.function.__name__} raised {type(exc).__name__}: {exc}"
            if plugin_name not in isolated:
                raise LthError(f"plugin {plugin_name}: {error}") from exc
            registry.remove_plugin(plugin_name)
            manager.unregister(name=plugin_name)  # nor may its lifecycle hooks run
            infos[plugin_name].status, infos[plugin_name].error = "broken", error
