"""Named components contributed by plugins, one table per kind."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from ..errors import LthError, UnknownComponentError

KINDS = ("architecture", "dataset", "criterion", "rewind", "analyzer", "launcher", "allocation",
         "dynamic")


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


@dataclass
class Registry:
    """Every component the loaded plugins registered, by kind and name."""

    tables: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    unavailable: list[Unavailable] = field(default_factory=list)

    def add(self, component: Component) -> None:
        """Add a component; a bad or already-taken name in its kind is an error."""
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
        if name in table:
            raise LthError(f"{component.kind} '{name}' is registered twice: "
                           f"by {table[name].plugin} and by {component.plugin}")
        table[name] = component

    def remove_plugin(self, plugin: str) -> list[tuple[str, str]]:
        """Drop every component of one plugin; (kind, name) of those dropped."""
        dropped = []
        for kind, table in self.tables.items():
            for name in [n for n, c in table.items() if c.plugin == plugin]:
                del table[name]
                dropped.append((kind, name))
        return dropped

    def mark_unavailable(self, plugin: str, error: str, provides: Iterable[tuple[str, str]],
                         complete: bool) -> None:
        """Record a plugin that failed to load, so errors about its components say so."""
        self.unavailable.append(Unavailable(plugin, error, frozenset(provides), complete))

    def get(self, kind: str, name: str) -> Component:
        """The component, or an error that lists the known names of that kind.

        When an installed plugin that failed to load provides (or may provide) the
        name, the error says which plugin and why it failed.
        """
        table = self.tables[kind]
        if name in table:
            return table[name]
        for broken in self.unavailable:
            if (kind, name) in broken.provides:
                raise UnavailableComponentError(kind, name, table, broken.plugin, broken.error)
        error = UnknownComponentError(kind, name, table)
        maybe = [b for b in self.unavailable if not b.complete]
        if maybe:
            error.args = (str(error) + "".join(f"; plugin {b.plugin} failed to load: {b.error}"
                                               for b in maybe),)
        raise error

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self.tables[kind])

    def all(self) -> list[Component]:
        """Every component, by kind then name."""
        return [self.tables[k][n] for k in KINDS for n in sorted(self.tables[k])]

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
