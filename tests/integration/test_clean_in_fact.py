"""Inputs that used to pass cleanly but mislead: a pattern no layer takes, YAML's ``on``,
``workers: 0``, and a report on an experiment that is still running."""

from __future__ import annotations

import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY


def write(tmp_path, extra: str) -> str:
    base = {k: v for k, v in TINY.items() if k not in ("sparsity",)}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(base) + extra)
    return str(tmp_path / "spec.yaml")


def test_an_nm_pattern_that_no_layer_takes_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    spec = write(tmp_path, 'sparsity: {pattern: "2:1000000"}\n')
    result = CliRunner().invoke(app, ["run", "--dry-run", spec])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sparsity.pattern" in errors[0] and "64" in errors[0], result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_population_on_as_the_readme_writes_it(registry):
    for written, meant in (("on", "on"), ("off", "off"), ("'on'", "on"), ("auto", "auto")):
        data = yaml.safe_load(f"training: {{population: {written}}}")
        assert build_spec(data, registry).training.population == meant


def test_workers_zero_is_one_line_in_plain_words(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    for value in ("0", "-3", "lots", "true"):
        result = CliRunner().invoke(app, ["validate", write(tmp_path, ""),
                                          "--set", f"launcher.workers={value}"])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "launcher.workers" in lines[0], result.output
        assert "constrained" not in lines[0] and "literal" not in lines[0], lines


def test_a_report_on_a_running_experiment_says_it_is_partial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plugins = load_plugins(installed=False)
    data = {**TINY, "pruning": {"levels": 1}, "controls": {"reinit": False, "random_prune": False},
            "tracking": {"log_models": "none"}, "report": {"enabled": False}}
    parent = run_experiment(build_spec(data, plugins.registry), plugins, uri).parent_run_id
    MlflowClient(uri).update_run(parent, status="RUNNING")
    result = CliRunner().invoke(app, ["report", parent, "--tracking-uri", uri,
                                      "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "still RUNNING" in result.output and "partial" in result.output, result.output
