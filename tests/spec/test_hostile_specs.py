"""Hostile spec files: refused with one line and exit code 2, fast, before any run exists."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.spec import safe_yaml

KEY = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)


def recursive(key: str, depth: int) -> str:
    """An anchor used inside its own value, ``depth`` levels down."""
    inner = "*a"
    for _ in range(depth):
        inner = f"[{inner}]"
    return f"{key}: &a {{x: {inner}}}\n"


def bomb(width: int, levels: int) -> str:
    """A "billion laughs": each level lists the previous one ``width`` times."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def deep(depth: int, flow: bool) -> str:
    if flow:
        return "experiment: " + "[" * depth + "]" * depth + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


def duplicate(key: str, section: str) -> str:
    return f"{section}:\n  {key}: 1\n  other: 2\n  {key}: 3\n"


HOSTILE = st.one_of(
    st.builds(recursive, KEY, st.integers(0, 5)),
    st.builds(bomb, st.integers(10, 30), st.integers(5, 9)),
    st.builds(deep, st.integers(safe_yaml.MAX_DEPTH + 1, 3000), st.booleans()),
    st.builds(lambda digits: f"experiment: {{seed: {'7' * digits}}}\n", st.integers(4301, 20000)),
    st.builds(duplicate, KEY, st.sampled_from(["experiment", "training", "pruning"])),
    st.sampled_from(["", "\n\n", "# only a comment\n", "{}\n", "---\n...\n"]),
    st.builds(lambda n: "analyzers: [" + ", ".join(["1"] * n) + "]\n",
              st.integers(safe_yaml.MAX_BYTES // 3 + 1, safe_yaml.MAX_BYTES // 2)),
)


def refused_cleanly(text: str) -> list[str]:
    """Run the spec in a fresh folder; the error lines, after checking the run was refused."""
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "hostile.yaml"
        spec.write_text(text)
        previous = os.getcwd()
        os.chdir(folder)
        try:
            result = CliRunner().invoke(app, ["run", str(spec)])
        finally:
            os.chdir(previous)
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert not (Path(folder) / "mlflow.db").exists()  # refused before any store or run
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert 1 <= len(lines) <= 3 and all(str(spec) in line for line in lines), lines
        return lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE)
def test_hostile_yaml_is_refused_in_one_line(text):
    refused_cleanly(text)


def test_each_class_says_what_is_wrong():
    cases = {
        recursive("experiment", 2): "refers to itself",
        bomb(10, 9): "alias bomb",
        deep(500, flow=True): "nested more than",
        "experiment: {seed: " + "9" * 5000 + "}\n": "too many digits",
        duplicate("lr", "training"): "duplicate key 'lr'",
        "# nothing\n": "the spec is empty",
    }
    for text, message in cases.items():
        assert message in refused_cleanly(text)[0]


def test_oversized_and_endless_files_are_not_read_whole(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"a" * (50 << 20))  # 50 MB
    lines = refused_cleanly_path(huge)
    assert "larger than" in lines[0]
    if Path("/dev/zero").exists():
        assert "larger than" in refused_cleanly_path(Path("/dev/zero"))[0]


def refused_cleanly_path(path: Path) -> list[str]:
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_anchors_merges_and_repeated_aliases_within_bounds_still_load():
    text = ("defaults: &d {lr: 0.01, batch_size: 32}\n"
            "training: {<<: *d, lr: 0.02}\n"
            "copies: [*d, *d, *d]\n")
    data = safe_yaml.parse(text)
    assert data["training"] == {"lr": 0.02, "batch_size": 32}
    assert data["copies"] == [data["defaults"]] * 3


@pytest.mark.parametrize("override, field", [
    ("experiment.replicates=true", "experiment.replicates"),
    ("training.batch_size=false", "training.batch_size"),
    ("training.lr=true", "training.lr"),
    ("model.hidden=[true, 4]", "model.hidden.0"),
    ("model.hidden=[0]", "model.hidden.0"),
    ("model.hidden=[-3, 4]", "model.hidden.0"),
    ("dataset.validation=.inf", "dataset.validation"),
    ("experiment.seed=99999999999999999999", "experiment.seed"),
    (f"dataset.split_seed={10**400}", "dataset.split_seed"),
    (f"training.duration={10**400}", "training.duration"),
    ("training.duration='99999999999999999999it'", "training.duration"),
    ("experiment.name=" + "x" * 256, "experiment.name"),
    ("tracking.experiment=" + "y" * 300, "tracking.experiment"),
    ("experiment.replicates=100000", "experiment.replicates"),
    ("pruning.levels=5000", "pruning.levels"),
])
def test_validate_refuses_what_run_could_not_run(tmp_path, override, field):
    spec = tmp_path / "spec.yaml"
    spec.write_text("experiment: {name: limits}\n")
    result = CliRunner().invoke(app, ["validate", str(spec), "--set", override])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f": {field}: " in lines[0], lines
