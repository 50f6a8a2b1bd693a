"""Every registered plugin's float params refuse .inf and .nan with one line naming the
field, through ``validate`` and ``run --dry-run`` as through the API (hypothesis draws)."""

from __future__ import annotations

import copy
import math
import typing
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import SpecError
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY

REGISTRY = load_plugins().registry  # installed plugins too: every registered one


def _takes_float(annotation: Any) -> bool:
    return annotation is float or any(_takes_float(a) for a in typing.get_args(annotation))


FLOAT_FIELDS = sorted((c.kind, REGISTRY.spec_name(c), field)
                      for c in REGISTRY.all()
                      for field, info in c.params_model.model_fields.items()
                      if _takes_float(info.annotation))
NON_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])


def placed(kind: str, name: str, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """TINY with the component in its slot, and the slot's field path."""
    data = copy.deepcopy(TINY)
    component = {"name": name, **params}
    if kind == "criterion":
        data["pruning"]["criterion"] = component
        return data, "pruning.criterion"
    if kind in ("allocation", "dynamic"):
        data["sparsity"] = {kind: component, **({"density": 0.5} if kind == "dynamic" else {})}
        return data, f"sparsity.{kind}"
    if kind == "analyzer":
        data["analyzers"] = [component]
        return data, "analyzers.0"
    if kind == "optimizer":
        data["training"]["optimizer"] = component
        return data, "training.optimizer"
    if kind == "schedule":
        data["training"]["schedule"] = {"decay": component}
        return data, "training.schedule.decay"
    slot = {"architecture": "model"}.get(kind, kind)
    data[slot] = component
    return data, slot


def test_every_kind_with_float_params_is_covered():
    assert {kind for kind, _, _ in FLOAT_FIELDS} >= {"architecture", "dataset", "launcher",
                                                     "allocation", "dynamic"}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FLOAT_FIELDS), NON_FINITE)
def test_a_non_finite_float_param_is_one_line_naming_its_field(case, value):
    kind, name, field = case
    data, path = placed(kind, name, {field: value})
    with pytest.raises(SpecError) as caught:
        build_spec(data, REGISTRY)
    lines = caught.value.lines()
    assert lines == [f"{path}.{field}: must be a finite number, got {value}"], lines


@pytest.mark.parametrize("component, where", [
    ("sparsity: {allocation: {name: erk, power: .inf}}", "sparsity.allocation.power"),
    ("launcher: {name: ray, num_cpus_per_unit: .inf}", "launcher.num_cpus_per_unit"),
    ("model: {name: mlp, dropout: .nan}", "model.dropout"),
])
@pytest.mark.parametrize("command", [["validate"], ["run", "--dry-run"]])
def test_the_cli_says_it_in_one_line_exit_2(tmp_path, monkeypatch, component, where, command):
    monkeypatch.chdir(tmp_path)
    base = yaml.safe_dump({k: v for k, v in TINY.items() if k not in ("model", "launcher")})
    (tmp_path / "spec.yaml").write_text(base + component + "\n")
    result = CliRunner().invoke(app, [*command, "spec.yaml"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and where in lines[0] and "finite" in lines[0], result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_erk_with_a_huge_power_still_reaches_its_target():
    from lth_suite.pruning.allocation import LayerShape, erk_counts

    layers = [LayerShape("a", (300, 64)), LayerShape("b", (100, 300)), LayerShape("c", (10, 100))]
    for power in (1.0, 50.0, 1e308):
        counts = erk_counts(layers, 0.2, power)
        assert sum(counts) == round(0.2 * sum(layer.numel for layer in layers)), (power, counts)
        assert all(0 <= c <= layer.numel for c, layer in zip(counts, layers))


@pytest.mark.parametrize("written", ["Infinity", "inf", "nan", "1e999"])
def test_a_string_that_validates_to_a_non_finite_float_is_refused_too(written):
    data, _ = placed("allocation", "erk", {"power": written})
    with pytest.raises(SpecError) as caught:
        build_spec(data, REGISTRY)
    lines = caught.value.lines()
    # "must be a finite number", or for NaN the bound it fails first ("greater than 0")
    assert len(lines) == 1 and lines[0].startswith("sparsity.allocation.power: "), lines


def test_a_sweep_point_with_a_non_finite_param_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "sweep.yaml").write_text(
        "base: base.yaml\ngrid:\n  sparsity.allocation: [{name: erk, power: .inf}, erk]\n")
    result = CliRunner().invoke(app, ["sweep", "sweep.yaml", "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "sparsity.allocation.power: must be a finite number" in lines[0]
