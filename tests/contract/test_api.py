"""lth_suite.api: one public module for plugin authors, light to import, fully documented."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lth_suite.api as api
from lth_suite.testing import heavy_imports
from lth_suite.training.acceleration import Acceleration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


# --- every name resolves, lazily, to the object of its home module ---------------------------

def test_every_public_name_resolves_to_its_definition():
    assert len(api.__all__) == len(set(api.__all__))
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    for name, module in api._LAZY.items():
        assert getattr(api, name) is getattr(importlib.import_module(module), name), name
    assert set(dir(api)) >= set(api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        api.NoSuchThing  # noqa: B018


def test_star_import_binds_every_name():
    namespace: dict[str, Any] = {}
    exec("from lth_suite.api import *", namespace)
    assert set(api.__all__) <= set(namespace)


def test_lazy_names_type_checking_imports_and_all_agree():
    """Type checkers read the TYPE_CHECKING imports, the runtime reads _LAZY: the same names."""
    tree = ast.parse((ROOT / "lth_suite" / "api.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    typed = {alias.name: f"lth_suite.{node.module}" for node in block.body
             if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert typed == api._LAZY
    eager = {alias.asname or alias.name for node in tree.body
             if isinstance(node, ast.ImportFrom) and node.module not in ("__future__", "typing")
             for alias in node.names}
    assert eager | set(api._LAZY) == set(api.__all__)
    assert not eager & set(api._LAZY)


# --- importing the API costs no torch ---------------------------------------------------------

def test_a_plugin_importing_the_api_loads_without_torch_or_mlflow():
    assert heavy_imports("""
        import types
        import lth_suite.api as api
        from lth_suite.api import (DataError, DatasetParams, LthError, NoParams, RegisterFn,
                                   hookimpl, lazy)
        from lth_suite.plugins.manager import load_plugins

        class Params(DatasetParams):
            pass

        @hookimpl
        def lth_register_criteria(register: RegisterFn) -> None:
            register("probe", lazy("probe_plugin.torch_code:probe"), NoParams, "a probe")

        plugin = types.ModuleType("probe_plugin")
        plugin.lth_register_criteria = lth_register_criteria
        registry = load_plugins(extra=[plugin], installed=False).registry
        registry.get("criterion", "probe"), dir(api), Params(validation=0.2)
    """, cwd=ROOT) == []


def test_a_torch_bearing_name_is_imported_on_first_use():
    """The probe above can fail: the lazy names do bring torch when used."""
    assert "torch" in heavy_imports("from lth_suite.api import Mask", cwd=ROOT)


# --- the protocols: the built-in components satisfy them ---------------------------------------

def protocol_members(protocol: type) -> dict[str, Any]:
    """The methods and attributes a protocol declares (typing.get_protocol_members is 3.13+)."""
    members = {name: value for name, value in vars(protocol).items()
               if callable(value) and (not name.startswith("_") or name == "__call__")}
    return {**members, **dict.fromkeys(vars(protocol).get("__annotations__", {}))}


def satisfies(component: object, protocol: type) -> None:
    """Every member of the protocol is there, each method taking the same arguments."""
    members = protocol_members(protocol)
    assert members, protocol
    for name, declared in members.items():
        assert hasattr(component, name), f"{component!r} lacks {protocol.__name__}.{name}"
        if declared is None:  # an attribute
            continue
        wanted = len(inspect.signature(declared).parameters) - 1  # less self
        # a function's own __call__ is a (*args, **kwargs) wrapper: ask the callable itself
        actual = component if name == "__call__" else getattr(component, name)
        assert len(inspect.signature(actual).parameters) == wanted, (component, name)


PARAMS = {("rewind", "step"): {"iteration": "10it"}, ("rewind", "auto"): {"candidates": [0, "10it"]},
          ("control", "rewind_step"): {"at": "10it"}}


def built(registry, kind: str) -> list[object]:
    """Every registered component of one kind, built with default params where it can be."""
    components = []
    for name in registry.names(kind):
        try:
            components.append(registry.build(kind, name, PARAMS.get((kind, name), {})))
        except api.LthError:  # an optional dependency is missing (ray)
            continue
    assert components, kind
    return components


def test_builtin_criteria_are_criteria(registry):
    model = registry.build("architecture", "mlp", {"hidden": [8]}, api.DataInfo("t", (1, 4, 4), 3))
    layers = api.prunable_layers(model)
    mask = api.Mask.dense(model, layers)
    request = api.PruneRequest(model, mask, layers, [([layer.name], 4) for layer in layers], 1,
                               __import__("torch").Generator().manual_seed(0))
    for criterion in built(registry, "criterion"):
        assert isinstance(criterion, api.Criterion)
        satisfies(criterion, api.Criterion)
        assert isinstance(criterion(request), api.Mask)
    assert not isinstance(object(), api.Criterion)


@pytest.mark.parametrize("kind, protocol", [("rewind", "Rewind"), ("analyzer", "Analyzer"),
                                            ("launcher", "Launcher"), ("control", "Control"),
                                            ("dynamic", "DynamicSparsity")])
def test_builtin_components_satisfy_their_protocol(registry, kind, protocol):
    for component in built(registry, kind):
        satisfies(component, getattr(api, protocol))


# --- lth_suite.testing without pytest ----------------------------------------------------------

def test_testing_imports_without_pytest():
    code = """
import sys
sys.modules["pytest"] = None  # as if pytest were not installed: importing it fails
import lth_suite.testing as testing
assert testing.TINY["model"]["name"] == "mlp" and testing.heavy_imports("import json") == []
assert not hasattr(testing, "hermetic")
try:
    testing.tracking_uri
except AttributeError as error:
    assert "install pytest" in str(error), error
else:
    raise AssertionError("a fixture without pytest")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_testing_fixtures_are_there_with_pytest():
    from lth_suite.testing import hermetic, tiny_spec_data, tracking_uri

    assert all(callable(f) for f in (hermetic, tiny_spec_data, tracking_uri))


# --- docs/plugins.md gives every field and method of every type a plugin receives --------------

def doc_section(name: str) -> str:
    """The text under the heading that names ``name`` in backquotes, up to the next heading."""
    lines, fenced, section = DOC.read_text().splitlines(), False, None
    for line in lines:
        fenced ^= line.startswith("```")
        heading = not fenced and re.match(r"#{1,6} ", line)
        if section is not None:
            if heading:
                break
            section.append(line)
        elif heading and f"`{name}`" in line:
            section = []
    assert section is not None, f"docs/plugins.md has no heading naming `{name}`"
    return "\n".join(section)


def public_methods(cls: type) -> list[str]:
    """Methods and properties a class defines itself, not its dataclass fields."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return [name for name, value in vars(cls).items()
            if not name.startswith("_") and name not in fields
            and (callable(value) or isinstance(value, (property, classmethod, staticmethod)))]


DOCUMENTED = ["PruneRequest", "Layer", "DataInfo", "RawData", "Splits", "StreamedData",
              "StreamedSplits", "TrainConfig",
              "TrainResult", "Step", "RewindContext", "RewindPoint", "ControlContext",
              "ControlStart", "Analysis", "BranchResult",
              "LevelFinished", "ExperimentFinished", "Unit", "UnitGraph", "Job", "Outcome"]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_field_and_method_is_documented(name):
    cls = getattr(api, name)
    text = doc_section(name)
    for field in dataclasses.fields(cls):
        row = re.search(rf"^\| `{field.name}` \| *([^|]*?) *\|", text, re.M)
        assert row and row.group(1), f"docs/plugins.md: `{name}` has no row for `{field.name}`"
    for method in public_methods(cls):
        assert re.search(rf"`(\w+\.)?{method}\b", text), f"`{name}.{method}` is not documented"


def test_mask_methods_dataset_params_and_acceleration_are_documented():
    mask = doc_section("Mask")
    assert {"dense", "kept", "density", "apply_", "pack", "unpack"} <= set(public_methods(api.Mask))
    for method in public_methods(api.Mask):
        assert re.search(rf"^\| `(Mask\.)?{method}\(", mask, re.M), f"Mask.{method}"
    params = doc_section("DatasetParams")
    for field in api.DatasetParams.model_fields:
        assert re.search(rf"^\| `{field}` \| *\S", params, re.M), f"DatasetParams.{field}"
    acceleration = doc_section("Acceleration")
    for field in dataclasses.fields(Acceleration):
        assert re.search(rf"^\| `{field.name}` \| *\S", acceleration, re.M), field.name


@pytest.mark.parametrize("protocol", ["Criterion", "Rewind", "Control", "Analyzer", "Launcher"])
def test_every_protocol_member_is_documented(protocol):
    text = doc_section(protocol)
    for member in protocol_members(getattr(api, protocol)):
        assert f"`{member}" in text, f"docs/plugins.md: `{protocol}.{member}` is not documented"


def test_the_doc_says_the_runner_masks_a_rewinds_weights_and_lists_the_api():
    assert "mask.apply_(model)" in doc_section("RewindPoint")
    text = DOC.read_text()
    for name in api.__all__:
        assert f"`{name}`" in text, f"docs/plugins.md does not mention `{name}`"
    assert "## Lifecycle hooks and resume" in text and "lth_suite.hooks_done_through" in text
