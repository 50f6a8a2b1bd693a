"""The command line: spec errors become one line each and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lth_suite import __version__
from lth_suite.cli import app

REPO = Path(__file__).parents[2]
QUICKSTART = REPO / "specs" / "quickstart.yaml"


def invoke(*args: str):
    """Run the CLI in process; an exception escaping it is a bug, whatever the input."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"lth-suite {' '.join(map(str, args))} raised "
                             f"{result.exception!r}\n{result.output}") from result.exception
    assert "Traceback" not in result.output
    return result


def unwrapped(text: str) -> str:
    """Rich wraps stdout at 80 columns when it is not a terminal (reported): undo it."""
    return " ".join(text.split())


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_spec_error(result, *fields: str) -> list[str]:
    """Exit 2; every stderr line is an ``error:`` line; each field is named."""
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert lines and all(line.startswith("error: ") for line in lines), lines
    for name in fields:
        assert any(f": {name}: " in line for line in lines), (name, lines)
    assert result.stdout == ""
    return lines


# --- spec errors ----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(("section", "fields", "path"), [
    ("training", {"lrr": 0.1}, "training.lrr"),
    ("training", {"lr": "abc"}, "training.lr"),
    ("training", {"lr": 0}, "training.lr"),
    ("training", {"lr": -1}, "training.lr"),
    ("pruning", {"fraction": {"linear": 1.2}}, "pruning.fraction.linear"),
    ("pruning", {"fraction": {"conv": 0}}, "pruning.fraction.conv"),
    ("pruning", {"levels": 0}, "pruning.levels"),
    ("pruning", {"criterion": {"name": "magnitude", "fracton": 0.2}},
     "pruning.criterion.fracton"),
])
def test_spec_error_exits_2_naming_the_field(tiny, write_spec, command, section, fields, path):
    tiny[section].update(fields)
    spec = write_spec(tiny)
    lines = assert_spec_error(invoke(command, spec), path)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {spec}: {path}: ")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_unknown_plugin_message(tiny, write_spec, command):
    tiny["pruning"]["criterion"] = "magnitud"
    lines = assert_spec_error(invoke(command, write_spec(tiny)), "pruning.criterion.name")
    assert lines[0].endswith("unknown criterion 'magnitud' "
                             "(known: channel_refill, lamp, magnitude, random, wanda)")


def test_unknown_field_message(tiny, write_spec):
    tiny["training"]["lrr"] = 0.1
    lines = assert_spec_error(invoke("validate", write_spec(tiny)))
    assert lines == [f"error: {write_spec(tiny)}: training.lrr: unknown field"]


def test_validate_prints_one_line_per_error(tiny, write_spec):
    tiny["training"].update(lr="abc", lrr=0.1)
    tiny["pruning"].update(levels=0, criterion="magnitud")
    tiny["model"]["hiden"] = [3]
    lines = assert_spec_error(invoke("validate", write_spec(tiny)), "training.lr",
                              "training.lrr", "pruning.levels", "pruning.criterion.name",
                              "model.hiden")
    assert len(lines) == 5


def test_validate_good_spec(tiny, write_spec, registry):
    from lth_suite.spec.loading import build_spec, spec_hash

    spec = write_spec(tiny)
    result = invoke("validate", spec)
    assert result.exit_code == 0, result.output
    assert unwrapped(result.stdout) == (
        f"{spec}: valid (hash {spec_hash(build_spec(tiny, registry))})")


def test_validate_quickstart():
    result = invoke("validate", QUICKSTART)
    assert result.exit_code == 0, result.output
    assert "valid (hash " in unwrapped(result.stdout)


def test_malformed_yaml_names_line_and_column(write_spec):
    spec = write_spec("experiment:\n  name: x\ntraining:\n  lr: [1\n  batch_size: 2\n")
    lines = assert_spec_error(invoke("validate", spec))
    assert len(lines) == 1
    assert "invalid YAML at line 5, column" in lines[0] and str(spec) in lines[0]


def test_tab_indentation_names_line(write_spec):
    lines = assert_spec_error(invoke("validate", write_spec("training:\n\tlr: 1\n")))
    assert "line 2, column 1" in lines[0]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_spec_that_is_not_a_mapping(write_spec, text):
    lines = assert_spec_error(invoke("validate", write_spec(text)))
    assert "a spec must be a mapping" in lines[0]


def test_missing_spec_file(tmp_path):
    for command in ("validate", "run"):
        lines = assert_spec_error(invoke(command, tmp_path / "nope.yaml"))
        assert "nope.yaml" in lines[0] and "cannot read spec" in lines[0]


def test_binary_spec_file(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bytes(range(256)))
    lines = assert_spec_error(invoke("validate", spec))
    assert lines == [f"error: {spec}: cannot read spec (not UTF-8 text: byte 128)"]


def test_empty_spec_is_refused_not_run_with_every_default(write_spec):
    for empty in ("", "# nothing here yet\n"):
        result = invoke("run", write_spec(empty))
        assert result.exit_code == 2
        assert "the spec is empty" in result.stderr and "Traceback" not in result.output


# --- overrides ------------------------------------------------------------------------

def test_overrides_change_the_spec(tiny, write_spec, registry):
    from lth_suite.spec.loading import apply_overrides, build_spec, spec_hash

    spec = write_spec(tiny)
    overrides = ["training.lr=0.01", "pruning.criterion=random", "model.hidden=[10,5]",
                 "training.schedule.milestones=[20it]", "rewind.name=step",
                 "rewind.iteration=5it"]
    args = [arg for override in overrides for arg in ("--set", override)]
    result = invoke("validate", spec, *args)
    assert result.exit_code == 0, result.output
    expected = build_spec(apply_overrides(tiny, overrides), registry)
    assert expected.model.params["hidden"] == [10, 5]
    assert expected.pruning.criterion.name == "random"
    assert expected.training.schedule.milestones[0].to_iterations(1) == 20
    assert f"hash {spec_hash(expected)}" in unwrapped(result.stdout)
    assert spec_hash(expected) != spec_hash(build_spec(tiny, registry))


def test_override_short_option(tiny, write_spec):
    spec = write_spec(tiny)
    plain = invoke("validate", spec).stdout
    assert invoke("validate", spec, "-s", "training.lr=0.01").stdout != plain


@pytest.mark.parametrize(("override", "field"), [
    ("training.lr=-1", "training.lr"),
    ("training.lrr=0.1", "training.lrr"),
    ("pruning.criterion=magnitud", "pruning.criterion.name"),
    ("model.hidden=abc", "model.hidden"),
    ("newsection.x=1", "newsection"),
])
def test_bad_override_values(tiny, write_spec, override, field):
    assert_spec_error(invoke("validate", write_spec(tiny), "--set", override), field)


@pytest.mark.parametrize("override", ["training.lr", "=0.1", "training.lr=[0.1"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_override(tiny, write_spec, command, override):
    lines = assert_spec_error(invoke(command, write_spec(tiny), "--set", override))
    assert len(lines) == 1 and "--set" in lines[0]


def test_run_overrides_option_reports_every_error(tiny, write_spec):
    """``--overrides`` (for ``mlflow run``) takes several ';'-separated overrides."""
    result = invoke("run", write_spec(tiny), "--overrides", "training.lrr=1; pruning.levels=0")
    assert_spec_error(result, "training.lrr", "pruning.levels")
    assert_spec_error(invoke("run", write_spec(tiny), "--overrides", "training.lr"))


def test_run_dry_run_applies_overrides_and_logs_nothing(tiny, write_spec, tmp_path):
    result = invoke("run", write_spec(tiny), "--dry-run", "--set", "pruning.levels=3",
                    "--overrides", "controls.reinit=false;controls.random_prune=false")
    assert result.exit_code == 0, result.output
    plan = unwrapped(result.stderr)
    assert "3 levels x 1 replicate(s)" in plan and "branches ticket:" in plan
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


# --- other commands -------------------------------------------------------------------

def test_schema_is_json_with_plugin_params():
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    props = schema["properties"]
    assert props["training"]["$ref"] == "#/$defs/Training"

    def option(slot: list[dict], name: str) -> dict:
        found = [o for o in slot if o.get("properties", {}).get("name", {}).get("const") == name]
        assert len(found) == 1, (name, slot)
        return found[0]

    mlp = option(props["model"]["oneOf"], "mlp")
    assert "hidden" in mlp["properties"] and mlp["additionalProperties"] is False
    assert "depth" in option(props["model"]["oneOf"], "conv")["properties"]
    step = option(props["rewind"]["oneOf"], "step")
    assert set(step["required"]) == {"name", "iteration"}
    criteria = schema["$defs"]["Pruning"]["properties"]["criterion"]["oneOf"]
    option(criteria, "magnitude"), option(criteria, "random")
    option(props["analyzers"]["items"]["oneOf"], "layer_density")
    for ref in _refs(schema):  # every reference resolves
        assert ref.startswith("#/$defs/") and ref.split("/")[-1] in schema["$defs"], ref


def test_schema_allows_bare_names_only_without_required_params(registry):
    """``rewind: init`` is valid in a spec, so the schema must allow it; ``rewind: step`` is not."""
    schema = json.loads(invoke("schema").stdout)
    slots = {"architecture": schema["properties"]["model"]["oneOf"],
             "dataset": schema["properties"]["dataset"]["oneOf"],
             "rewind": schema["properties"]["rewind"]["oneOf"],
             "criterion": schema["$defs"]["Pruning"]["properties"]["criterion"]["oneOf"],
             "analyzer": schema["properties"]["analyzers"]["items"]["oneOf"]}
    for kind, options in slots.items():
        bare = [o["enum"] for o in options if o.get("type") == "string"]
        defaultable = {c.name for c in registry.all() if c.kind == kind and not any(
            f.is_required() for f in c.params_model.model_fields.values())}
        assert set(bare[0] if bare else []) == defaultable, kind
        assert len(options) == len(registry.names(kind)) + bool(bare), kind
    rewinds = set(slots["rewind"][-1]["enum"])
    assert {"init", "lr", "finetune"} <= rewinds and "step" not in rewinds
    assert {"magnitude", "random"} <= set(slots["criterion"][-1]["enum"])


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_plugins_table():
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "lth_suite.builtin.criteria" in result.stdout and "magnitude" in result.stdout


def test_version_in_process():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"lth-suite {__version__}"


def test_no_arguments_shows_help():
    result = CliRunner().invoke(app, [])
    assert "validate" in result.output and "run" in result.output


def _python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LTH_SUITE_LOAD_PLUGINS": ""}
    return subprocess.run([sys.executable, "-m", "lth_suite", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_python_m_version(tmp_path):
    proc = _python_m("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lth-suite {__version__}"


def test_python_m_spec_error(tmp_path, tiny, write_spec):
    """The real process: one error line on stderr, exit 2, no traceback, nothing on stdout."""
    tiny["pruning"]["criterion"] = "magnitud"
    tiny["training"]["lr"] = "abc"
    proc = _python_m("run", str(write_spec(tiny)), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'spec.yaml'}: training.lr: "
        "Input should be a valid number, unable to parse string as a number",
        f"error: {tmp_path / 'spec.yaml'}: pruning.criterion.name: "
        "unknown criterion 'magnitud' (known: channel_refill, lamp, magnitude, random, wanda)",
    ]


def test_the_command_exits_fast_yet_runs_exit_handlers_and_flushes(tmp_path):
    code = ("import atexit, sys\n"
            "from lth_suite.cli import _exit\n"
            "atexit.register(lambda: print('handler ran'))\n"
            "print('unflushed', end='')\n"
            "sys.stderr.write('to stderr')\n"
            "_exit(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])\n")
    for argument, status in (("3", 3), ("0", 0), ("why it stopped", 1)):
        proc = subprocess.run([sys.executable, "-c", code, argument], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == status
        assert proc.stdout == "unflushedhandler ran\n"
        assert proc.stderr.startswith("to stderr")
        assert ("why it stopped" in proc.stderr) == (status == 1)
