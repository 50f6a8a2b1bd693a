"""Loading a spec: YAML, ``--set`` overrides, plugin params, hash and JSON schema."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import LthError, SpecError, UnknownComponentError
from ..plugins.registry import Registry
from . import safe_yaml
from .base import ModelSpec
from .controls import Controls, resolve_controls
from .finite import non_finite
from .limits import beyond_limits
from .problems import problems_of as _problems
from .problems import yaml_type as _yaml_type
from .sections import DEFAULT_TASK, ComponentSpec, ExperimentSpec
from .sparsity import raw_components

# Where results are logged and shown, and what runs the trainings, does not change them.
HASH_EXCLUDES = ("tracking", "report", "launcher")


def read_yaml(path: Path, what: str = "spec") -> dict[str, Any]:
    """Parse a spec file within bounds (``safe_yaml``); errors name the file, line and column."""
    try:
        with path.open("rb") as handle:  # bounded: /dev/zero or a 50 MB file is not read whole
            raw = handle.read(safe_yaml.MAX_BYTES + 1)
        if len(raw) > safe_yaml.MAX_BYTES:
            raise LthError(f"{path}: refused: larger than {safe_yaml.MAX_BYTES // 1024} KiB; "
                           f"a {what} is a small text file")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise LthError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise LthError(f"{path}: cannot read {what} (not UTF-8 text: byte {exc.start})") from None
    data = _parse(text, str(path))
    if data is None or data == {}:
        raise LthError(f"{path}: the {what} is empty; write at least one section, e.g. "
                       f"'experiment: {{name: my-study}}' (see specs/quickstart.yaml)")
    if not isinstance(data, dict):
        raise LthError(f"{path}: a {what} must be a mapping of sections, got {_yaml_type(data)}")
    return data


def _parse(text: str, source: str) -> Any:
    """YAML data of ``text``; a refusal or syntax error is one line naming ``source``."""
    try:
        return safe_yaml.parse(text)
    except safe_yaml.YamlRefused as exc:
        raise LthError(f"{source}: refused: {exc}") from None
    except RecursionError:
        raise LthError(f"{source}: refused: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LthError(f"{source}: invalid YAML at {where}{problem}") from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides; each value is parsed as YAML."""
    result = json.loads(json.dumps(data, default=str))
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise LthError(f"--set {override!r}: expected KEY=VALUE, e.g. training.lr=0.01")
        value = _parse(raw, f"--set {key.strip()}")
        node = result
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:  # a section not written: a plugin slot starts from its default
                child = _default_component(parts[:depth + 1])
            if isinstance(child, str):  # a bare plugin name becomes flat form
                child = {"name": child}
            if child is not node.get(part):
                node[part] = child
            if not isinstance(child, dict):
                raise LthError(f"--set {key}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _default_component(path: Sequence[str]) -> dict[str, Any]:
    """``{name: default}`` when ``path`` is a plugin slot (``model``, ``pruning.criterion``),
    so ``--set model.hidden=[10]`` keeps the default architecture; else an empty section."""
    slot = {p: c for p, _, c in ExperimentSpec().components()}.get(".".join(path))
    return {"name": slot.name} if slot is not None else {}


def _check_component(path: str, kind: str, component: ComponentSpec, registry: Registry,
                     ) -> tuple[ComponentSpec | None, list[tuple[str, str]]]:
    """The component with its params validated and defaults filled, or its problems."""
    try:
        model: type[BaseModel] = registry.get(kind, component.name).params_model
    except UnknownComponentError as exc:
        return None, [(f"{path}.name", str(exc))]
    infinite = non_finite(component.params, model, path)
    if infinite:
        return None, infinite
    try:
        validated = model.model_validate(component.params)
    except ValidationError as exc:
        return None, _problems(exc, path.split("."))
    # Again once validated: a string such as "Infinity" (JSON's word) becomes a float there.
    infinite = non_finite(validated.model_dump(), model, path)
    if infinite:
        return None, infinite
    params = validated.model_dump(mode="json")
    named = _named_components(path, model, params, registry)
    if named:
        return None, named
    return component.model_copy(update={"params": params}), []


COMPONENT_KIND = "component_kind"  # a params field's json_schema_extra key: names of this kind


def _named_components(path: str, model: type[BaseModel], params: dict[str, Any],
                      registry: Registry) -> list[tuple[str, str]]:
    """Problems of params fields that name other components (``Field(json_schema_extra=
    {"component_kind": "format"})``): each name must be registered, so that a typo fails
    here, before anything trains, not when the component first uses it."""
    problems = []
    for field, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind = extra.get(COMPONENT_KIND)
        value = params.get(field)
        if kind is None or value is None:
            continue
        for index, name in enumerate(value if isinstance(value, list) else [value]):
            try:
                registry.get(str(kind), name)
            except UnknownComponentError as exc:
                where = f"{path}.{field}" + (f".{index}" if isinstance(value, list) else "")
                problems.append((where, str(exc)))
    return problems


def _resolve_params(spec: ExperimentSpec, registry: Registry) -> ExperimentSpec:
    """Validate every component's params against its plugin's model; fill defaults."""
    problems: list[tuple[str, str]] = []
    resolved: dict[str, ComponentSpec] = {}
    for path, kind, component in spec.components():
        checked, found = _check_component(path, kind, component, registry)
        problems += found
        if checked is not None:
            resolved[path] = checked
    controls, found = resolve_controls(spec.controls, registry)
    problems += found
    if problems:
        raise SpecError(problems)
    data = spec.model_dump(mode="json")
    data["controls"] = controls
    for path, component in resolved.items():
        node: Any = data
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = component.model_dump(mode="json")
        else:
            node[last] = component.model_dump(mode="json")
    return ExperimentSpec.model_validate(data)


def _raw_components(data: Any) -> list[tuple[str, str, Any]]:
    """(field path, kind, raw value) of each component written in an unvalidated spec."""
    if not isinstance(data, dict):
        return []
    found = [(path, kind, data[key]) for path, key, kind in
             (("model", "model", "architecture"), ("dataset", "dataset", "dataset"),
              ("task", "task", "task"),
              ("rewind", "rewind", "rewind"), ("launcher", "launcher", "launcher"))
             if key in data]
    pruning = data.get("pruning")
    if isinstance(pruning, dict) and "criterion" in pruning:
        found.append(("pruning.criterion", "criterion", pruning["criterion"]))
    found += raw_components(data.get("sparsity"))
    analyzers = data.get("analyzers")
    if isinstance(analyzers, list):
        found += [(f"analyzers.{i}", "analyzer", a) for i, a in enumerate(analyzers)]
    return found


def _component_problems(data: Any, registry: Registry,
                        known: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Plugin problems of a spec whose core failed, so one pass reports every error."""
    problems = []
    for path, kind, raw in _raw_components(data):
        if any(loc == path or loc.startswith(f"{path}.") for loc, _ in known):
            continue  # already reported
        try:
            component = (ModelSpec if kind == "architecture" else ComponentSpec).model_validate(raw)
        except ValidationError:
            continue
        problems += _check_component(path, kind, component, registry)[1]
    if isinstance(data, dict) and not any(loc.startswith("controls") for loc, _ in known):
        try:
            problems += resolve_controls(Controls.model_validate(data.get("controls", {})),
                                          registry)[1]
        except ValidationError:
            pass  # reported with the core's problems
    return problems


def build_spec(data: dict[str, Any], registry: Registry, source: str | None = None) -> ExperimentSpec:
    """Validate a spec mapping, including plugin params; ``SpecError`` lists every problem."""
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise SpecError(problems + _component_problems(data, registry, problems), source) from None
    try:
        resolved = _resolve_params(spec, registry)
    except SpecError as exc:
        raise SpecError(exc.problems, source) from None
    problems = beyond_limits(data, resolved.model_dump(mode="json"))
    if problems:
        raise SpecError(problems, source)
    return resolved


def load_spec(path: Path, registry: Registry, overrides: Sequence[str] = ()) -> ExperimentSpec:
    """Read, override and validate a spec file."""
    return build_spec(apply_overrides(read_yaml(path), overrides), registry, str(path))


def canonical(spec: ExperimentSpec) -> dict[str, Any]:
    """The defaults-filled spec as plain data, without the fields the hash ignores."""
    data = spec.model_dump(mode="json")
    for key in HASH_EXCLUDES:
        data.pop(key, None)
    if data.get("sparsity", {}) is None:  # absent: the hash of every older spec stays
        data.pop("sparsity")
    if data.get("task") == {"name": DEFAULT_TASK}:  # likewise for the default task
        data.pop("task")
    return data


def spec_hash(spec: ExperimentSpec) -> str:
    """A stable 16-hex-digit name of the experiment; the key for resuming it."""
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_yaml(spec: ExperimentSpec) -> str:
    """The full spec, defaults filled, as YAML."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def json_schema(registry: Registry) -> dict[str, Any]:
    """The spec's JSON schema, with each component's params model as a ``oneOf``.

    A component appears under the name a spec selects it by: its bare name, or its
    qualified ``PLUGIN:NAME`` where several plugins registered the bare one.
    """
    schema = ExperimentSpec.model_json_schema()
    definitions = schema.setdefault("$defs", {})
    options: dict[str, list[dict[str, Any]]] = {}
    bare: dict[str, list[str]] = {}
    for component in registry.all():
        name = registry.spec_name(component)
        params = component.params_model.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub in params.pop("$defs", {}).items():
            definitions.setdefault(name, sub)
        params.setdefault("properties", {})
        params["properties"] = {"name": {"const": name}, **params["properties"]}
        params["required"] = ["name", *params.get("required", [])]
        params["additionalProperties"] = False
        params["title"] = f"{component.kind} {name}"
        if component.description:
            params["description"] = component.description
        options.setdefault(component.kind, []).append(params)
        if params["required"] == ["name"]:  # the spec also takes a bare name then
            bare.setdefault(component.kind, []).append(name)
    for kind, names in bare.items():
        options[kind].append({"type": "string", "enum": names,
                              "description": f"a {kind} by name, default params"})
    slots = {"model": "architecture", "dataset": "dataset", "rewind": "rewind",
             "launcher": "launcher"}
    for field, kind in slots.items():
        schema["properties"][field] = {"oneOf": options.get(kind, [])}
    pruning = definitions["Pruning"]["properties"]
    pruning["criterion"] = {"oneOf": options.get("criterion", [])}
    schema["properties"]["analyzers"] = {"type": "array",
                                         "items": {"oneOf": options.get("analyzer", [])}}
    schema["properties"]["controls"] = {
        "type": "object", "additionalProperties": False,
        "description": "control plugins by name: true, false or their params",
        "properties": {c["properties"]["name"]["const"]: {"oneOf": [
            {"type": "boolean"},
            {**{k: v for k, v in c.items() if k != "required"},
             "required": [r for r in c.get("required", []) if r != "name"],
             "properties": {k: v for k, v in c["properties"].items() if k != "name"}}]}
            for c in options.get("control", []) if isinstance(c.get("properties"), dict)}}
    sparsity = definitions["Sparsity"]["properties"]
    for field, kind in (("allocation", "allocation"), ("dynamic", "dynamic")):
        sparsity[field] = {"oneOf": [*options.get(kind, []), {"type": "null"}]}
    return schema
