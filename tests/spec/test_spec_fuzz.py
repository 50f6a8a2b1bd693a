"""Property test: mutated specs never give a traceback and never leave a half-made run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lth_suite.cli import app
from tests.conftest import TINY

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-3, max_value=400),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["", "abc", "10it", "2ep", "-5it", "magnitude", "random", "mlp", "conv",
                     "digits", "npz", "step", "lr", "global", "oneshot", "cuda", "[1, 2]"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["name", "x", "iteration", "hidden"]),
                                   SCALARS, max_size=2))


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested spec mapping."""
    found = [prefix] if prefix else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    return found


@st.composite
def mutated_specs(draw) -> dict[str, Any]:
    spec = copy.deepcopy(TINY)
    spec["training"]["duration"] = "5it"
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths(spec)))
        *parents, last = path
        node = spec
        for key in parents:
            node = node[key]
        if not isinstance(node, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            node[last] = draw(VALUES)
        elif action == "delete":
            node.pop(last, None)
        else:
            node[draw(st.sampled_from(["typo", "fracton", "lrr", last + "s"]))] = draw(SCALARS)
    return spec


def check(args: list[str], tmp: Path) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.strip().splitlines()[0].startswith("error:"), result.output
    assert not (tmp / "mlflow.db").exists() and not (tmp / "mlruns").exists()  # no run made


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow], derandomize=True)


@settings(FUZZ, max_examples=150)
@given(spec=mutated_specs())
def test_validate_never_crashes_on_mutated_specs(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    check(["validate", str(path)], tmp_path)


@settings(FUZZ, max_examples=40)
@given(spec=mutated_specs())
def test_dry_run_never_crashes_or_logs_on_mutated_specs(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    check(["run", str(path), "--dry-run"], tmp_path)


@settings(FUZZ, max_examples=60)
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-#&*!|>'\"%@` \n\tab1")), max_size=60))
def test_malformed_yaml_is_a_one_line_error(text, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(TINY) + text)
    check(["validate", str(path)], tmp_path)
