"""The spec's ``controls`` section: control plugins by name, each ``true``, ``false`` or
its params, laid over the default controls; resolved against the registry into the
canonical form the spec hash reads."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import UnknownComponentError
from ..plugins.registry import Registry
from .problems import problems_of

# The spec's default controls, built-in control plugins: every experiment trains them
# unless it turns them off. Nothing else in the core names a control.
REINIT, RANDOM_PRUNE = "reinit", "random_prune"
CONTROLS = (REINIT, RANDOM_PRUNE)
BRANCHES = ("ticket", *CONTROLS)  # the ticket and the default controls
DEFAULT_CONTROLS: dict[str, bool] = dict.fromkeys(CONTROLS, True)
ControlSetting = bool | dict[str, Any]


class Controls(RootModel[dict[str, ControlSetting]]):
    """Sibling trainings at every pruned level that test the hypothesis: control plugins
    by name, each ``true``, ``false`` or a mapping of its params.

    What a spec writes is laid over ``DEFAULT_CONTROLS``; once resolved against the
    plugins (``spec.loading``) a control without params reads ``true``, one with params
    its params with defaults filled, and ``false`` is kept only for a default control,
    so that a spec's hash does not depend on how it spells a control left out.
    """

    model_config = ConfigDict(frozen=True)
    root: dict[str, ControlSetting] = Field(default_factory=lambda: dict(DEFAULT_CONTROLS))

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**DEFAULT_CONTROLS, **data}
        return data

    @field_validator("root")
    @classmethod
    def _named(cls, root: dict[str, ControlSetting]) -> dict[str, ControlSetting]:
        for name in root:
            if not name or name != name.strip() or "/" in name:
                raise ValueError(f"{name!r} is not a control name")
        return root

    def enabled(self) -> list[str]:
        """The controls asked for, in the spec's order after the default ones."""
        return [name for name, setting in self.root.items() if setting is not False]

    def params(self, name: str) -> dict[str, Any]:
        """The params a control was given (none for ``true``)."""
        setting = self.root[name]
        return dict(setting) if isinstance(setting, dict) else {}



def resolve_controls(controls: Controls, registry: Registry,
                      ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The controls in canonical form (``true``, or the params with defaults filled; a
    ``false`` kept only for a default control) and the problems of each: an unknown
    name, bad params."""
    resolved: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, setting in controls.root.items():
        try:
            model: type[BaseModel] = registry.get("control", name).params_model
        except UnknownComponentError as exc:
            problems.append((f"controls.{name}", str(exc)))
            continue
        if setting is False:
            if name in DEFAULT_CONTROLS:
                resolved[name] = False
            continue
        try:
            params = model.model_validate(setting if isinstance(setting, dict) else {})
        except ValidationError as exc:
            problems += problems_of(exc, ["controls", name])
            continue
        resolved[name] = params.model_dump(mode="json") or True
    return resolved, problems
