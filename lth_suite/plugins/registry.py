"""Named components contributed by plugins, one table per kind."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from ..errors import LthError, UnknownComponentError

KINDS = ("architecture", "dataset", "criterion", "rewind", "analyzer", "launcher", "allocation",
         "dynamic", "format", "control", "optimizer", "schedule", "task")


class NoParams(BaseModel):
    """Params model of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


class RegisterFn(Protocol):
    """The callback every ``lth_register_*`` hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        params_model: type[BaseModel] = NoParams,
        description: str = "",
    ) -> None:
        """Register one component: its unique name, its factory (or ``lazy("pkg.mod:attr")``),
        the pydantic model its spec params validate against, and a one-line description."""
        ...


class UnavailableComponentError(UnknownComponentError):
    """A spec names a component of an installed plugin that failed to load."""

    def __init__(self, kind: str, name: str, known: Iterable[str], plugin: str, error: str):
        super().__init__(kind, name, list(known))
        self.plugin, self.error = plugin, error
        self.args = (f"{kind} '{name}' comes from plugin {plugin}, which failed to load: "
                     f"{error}",)


@dataclass(frozen=True)
class Unavailable:
    """An installed plugin that failed to load, and what it is known to provide.

    ``complete`` is true when the plugin declared its components in static metadata,
    so a name outside ``provides`` is certainly not one of its own.
    """

    plugin: str
    error: str
    provides: frozenset[tuple[str, str]]  # (kind, name)
    complete: bool


@dataclass(frozen=True)
class Component:
    """One registered component and the plugin it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params_model: type[BaseModel]
    description: str
    plugin: str

    def label(self, params: Mapping[str, object]) -> str:
        """What the component did with these params, as the figures' legends say it: its
        description filled in by ``describe`` (its name when it has no description)."""
        return describe(self.description or f"{self.kind} {self.name}", params)


def describe(description: str, params: Mapping[str, object]) -> str:
    """``description`` with its ``{param}`` fields filled from ``params``:
    ``"weights rewound to iteration {iteration}"`` with ``iteration=500it`` reads
    ``weights rewound to iteration 500it``. Params it does not name follow in parentheses,
    so a legend never hides a setting."""
    try:
        named = {field for _, field, _, _ in Formatter().parse(description) if field}
        filled = description.format_map({field: params.get(field, f"<{field}>")
                                          for field in named})
    except (ValueError, LookupError, AttributeError):  # a stray brace: shown as written
        named, filled = set(), description
    rest = [f"{key}={value}" for key, value in params.items() if key not in named]
    return f"{filled} ({', '.join(rest)})" if rest else filled


class AmbiguousComponentError(UnknownComponentError):
    """A spec names a component by a name that several plugins registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = list(choices)
        super().__init__(kind, name, choices)
        self.known = choices  # in load order: the built-in first
        self.args = (f"{kind} '{name}' is registered by several plugins; name one of "
                     f"{', '.join(self.known)}",)


def qualified_name(plugin: str, name: str) -> str:
    """``PLUGIN:NAME``, the name of a component that stays unique whatever else is installed."""
    return f"{plugin}:{name}"


@dataclass(frozen=True)
class Clash:
    """A component name that several plugins registered in one kind."""

    kind: str
    name: str
    plugins: tuple[str, ...]  # in load order

    @property
    def choices(self) -> list[str]:
        """The qualified names a spec may use instead."""
        return [qualified_name(plugin, self.name) for plugin in self.plugins]

    def warning(self) -> str:
        """One line for ``lth-suite plugins``."""
        return (f"{self.kind} '{self.name}' is registered by {', '.join(self.plugins)}: a spec "
                f"must name it {' or '.join(self.choices)}")


@dataclass
class Registry:
    """Every component the loaded plugins registered, by kind and name.

    Each component answers to ``PLUGIN:NAME`` (its qualified name) and, while no other
    plugin registers the same name in its kind, to ``NAME`` alone. Two plugins may
    register one name: only a spec that uses the bare name then fails, naming the
    qualified choices, so one plugin's choice of name never takes the others down.
    """

    # kind -> name -> the components of that name, in load order (several: a clash)
    tables: dict[str, dict[str, list[Component]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    unavailable: list[Unavailable] = field(default_factory=list)

    def add(self, component: Component) -> None:
        """Add a component; a bad name, or one its own plugin already took, is an error."""
        table = self.tables[component.kind]
        name = component.name
        if not isinstance(name, str) or not name or name != name.strip():
            raise LthError(f"{component.kind} {name!r} from {component.plugin}: a component "
                           "name must be a non-empty string without surrounding spaces")
        where = f"{component.kind} '{name}' from {component.plugin}"
        if not callable(component.factory):
            raise LthError(f"{where}: factory is not callable")
        model = component.params_model
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            raise LthError(f"{where}: params_model must be a pydantic BaseModel subclass")
        reserved = sorted({"name", "params"} & set(model.model_fields))
        if reserved:  # the spec's flat form {name: x, param: ...} could never set them
            raise LthError(f"{where}: a params field cannot be called {reserved[0]!r}")
        taken = table.setdefault(name, [])
        if any(other.plugin == component.plugin for other in taken):
            raise LthError(f"{component.kind} '{name}' is registered twice by {component.plugin}")
        taken.append(component)

    def remove_plugin(self, plugin: str) -> list[tuple[str, str]]:
        """Drop every component of one plugin; (kind, name) of those dropped."""
        dropped = []
        for kind, table in self.tables.items():
            for name in list(table):
                kept = [c for c in table[name] if c.plugin != plugin]
                if len(kept) == len(table[name]):
                    continue
                dropped.append((kind, name))
                if kept:
                    table[name] = kept
                else:
                    del table[name]
        return dropped

    def mark_unavailable(self, plugin: str, error: str, provides: Iterable[tuple[str, str]],
                         complete: bool) -> None:
        """Record a plugin that failed to load, so errors about its components say so."""
        self.unavailable.append(Unavailable(plugin, error, frozenset(provides), complete))

    def get(self, kind: str, name: str) -> Component:
        """The component named ``NAME`` or ``PLUGIN:NAME``, or an error naming the choices.

        A bare name that several plugins registered is an ``AmbiguousComponentError``
        listing their qualified names. When an installed plugin that failed to load
        provides (or may provide) the name, the error says which plugin and why it failed.
        """
        table = self.tables[kind]
        found = table.get(name, [])
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousComponentError(kind, name, (qualified_name(c.plugin, name)
                                                       for c in found))
        plugin, sep, short = name.rpartition(":")
        if sep:
            for component in table.get(short, []):
                if component.plugin == plugin:
                    return component
        for broken in self.unavailable:
            if (kind, name) in broken.provides or (
                    sep and plugin == broken.plugin and (kind, short) in broken.provides):
                raise UnavailableComponentError(kind, name, self.names(kind), broken.plugin,
                                                broken.error)
        error = UnknownComponentError(kind, name, self.names(kind))
        maybe = [b for b in self.unavailable if not b.complete]
        if maybe:
            error.args = (str(error) + "".join(f"; plugin {b.plugin} failed to load: {b.error}"
                                               for b in maybe),)
        raise error

    def names(self, kind: str) -> list[str]:
        """Names of one kind that ``get`` resolves, sorted: each component's bare name,
        or its qualified ``PLUGIN:NAME`` where several plugins registered the name."""
        return sorted(self.spec_name(c) for c in self._of_kind(kind))

    def spec_name(self, component: Component) -> str:
        """The shortest name that selects ``component`` in a spec, as things stand."""
        if len(self.tables[component.kind].get(component.name, ())) > 1:
            return qualified_name(component.plugin, component.name)
        return component.name

    def clashes(self) -> list[Clash]:
        """Names that several plugins registered in one kind, by kind then name."""
        return [Clash(kind, name, tuple(c.plugin for c in self.tables[kind][name]))
                for kind in KINDS for name in sorted(self.tables[kind])
                if len(self.tables[kind][name]) > 1]

    def all(self) -> list[Component]:
        """Every component, by kind then name (clashing ones in load order)."""
        return [c for kind in KINDS for c in self._of_kind(kind)]

    def _of_kind(self, kind: str) -> list[Component]:
        table = self.tables[kind]
        return [c for name in sorted(table) for c in table[name]]

    def build(self, kind: str, name: str, params: dict[str, Any], *args: Any) -> Any:
        """Validate params against the component's model and call its factory."""
        component = self.get(kind, name)
        return component.factory(component.params_model.model_validate(params), *args)


class LazyFactory:
    """A factory named by ``"package.module:attribute"``, imported on its first call.

    Registering one costs no import, so a plugin whose components need torch (or any
    heavy dependency) loads in milliseconds; the import happens when a spec uses it.
    """

    def __init__(self, target: str):
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"lazy({target!r}): expected 'package.module:attribute'")
        self.target = target
        self._resolved: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The factory itself, imported now if it was not yet."""
        if self._resolved is None:
            import importlib

            module, _, attribute = self.target.partition(":")
            found: Any = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
            self._resolved = found
        return self._resolved

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Import the factory on first use and call it."""
        return self.resolve()(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:  # pickles as its target, not the import
        return {"target": self.target, "_resolved": None}

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> LazyFactory:
    """A factory that imports ``"package.module:attribute"`` on first call and calls it."""
    return LazyFactory(target)
