"""Named components contributed by plugins, one table per kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from .errors import LthError, UnknownComponentError

KINDS = ("architecture", "dataset", "criterion", "rewind", "analyzer")


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
    ) -> None: ...


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

    def get(self, kind: str, name: str) -> Component:
        """The component, or an error that lists the known names of that kind."""
        table = self.tables[kind]
        if name not in table:
            raise UnknownComponentError(kind, name, table)
        return table[name]

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
