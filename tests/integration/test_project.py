"""The project's own files: README commands, CI script, MLproject, conda env, specs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib
import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    commands = readme_commands()
    install = next(c for c in commands if "pip install" in c)
    tests = next(c for c in commands if "pytest" in c)
    assert "lth-suite run specs/quickstart.yaml" in install
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci_lines and tests in ci_lines
    assert ci_lines.index(install) < ci_lines.index(tests)


def test_the_readme_installs_what_each_command_needs():
    commands = readme_commands()
    install = next(c for c in commands if "pip install" in c)
    tests = next(c for c in commands if "pytest" in c)
    # the quickstart needs no extra; the tests need the test extra and ray (its tests run in CI)
    assert "pip install -c .ci/constraints.txt -e . &&" in install and "[" not in install
    assert "-e '.[test,ray]'" in tests
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"test", "ray", "docs"} <= set(extras)
    assert "lth-suite[docs]" in extras["test"]  # the tests build the docs site


def test_the_docs_give_the_readme_commands_verbatim():
    page = (ROOT / "docs" / "getting-started.md").read_text()
    commands = readme_commands()
    install = next(c for c in commands if "pip install" in c)
    tests = next(c for c in commands if "pytest" in c)
    assert install in page and tests in page


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_conda_env_matches_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(project["dependencies"])
    for required in ("mlflow", "torch", "torchvision", "pydantic", "typer", "pluggy", "pyyaml"):
        assert any(dep.startswith(required) for dep in project["dependencies"])


def test_ci_pins_torch_in_a_constraints_file_not_in_the_requirements():
    pins = (ROOT / ".ci" / "constraints.txt").read_text()
    assert "torch==2.14.1" in pins and "torchvision==0.29.1" in pins
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("==" in dep or "<" in dep for dep in project["dependencies"])


SPECS = sorted((ROOT / "specs").glob("*.yaml"))
# "# lth-suite run specs/x.yaml", or for a spec that needs one of the plugin packages,
# "# pip install ./plugins/<package> && lth-suite run specs/x.yaml"
FIRST_LINE = re.compile(r"# (?:pip install \./plugins/([\w.-]+) && )?(lth-suite run specs/.*)")


def test_there_are_specs():
    assert SPECS


@pytest.mark.parametrize("spec", SPECS, ids=lambda path: path.name)
def test_every_spec_begins_with_the_command_that_runs_it_and_is_valid(spec, monkeypatch):
    from importlib import metadata

    from typer.testing import CliRunner

    from lth_suite.cli import app

    first = spec.read_text().splitlines()[0]
    match = FIRST_LINE.fullmatch(first)
    assert match and match.group(2).startswith(f"lth-suite run specs/{spec.name}"), first
    if match.group(1):  # validate it with that plugin loaded (and no other)
        project = ROOT / "plugins" / match.group(1) / "pyproject.toml"
        assert project.exists(), f"{spec.name} installs {match.group(1)}, not in plugins/"
        dist = tomllib.loads(project.read_text())["project"]["name"]
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{dist} is not installed (pip install ./plugins/{match.group(1)})")
        monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", dist)
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "lth_suite", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "validate" in done.stdout


def mlflow_run(tmp_path: Path, *params: str, succeeds: bool = True) -> tuple[MlflowClient, list]:
    """``mlflow run`` this project for real into a temporary store; its runs."""
    mlflow = Path(sys.executable).with_name("mlflow")
    if not mlflow.exists():
        pytest.skip("the mlflow command is not installed beside this Python")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("mlproject", artifact_location=(tmp_path / "art").as_uri())
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LTH_SUITE_LOAD_PLUGINS": ""}
    args = [arg for param in params for arg in ("-P", param)]
    done = subprocess.run([str(mlflow), "run", str(ROOT), "--env-manager", "local",
                           "--experiment-name", "mlproject", *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert (done.returncode == 0) == succeeds, done.stderr[-3000:]
    tmp_path.joinpath("mlflow-run.log").write_text(done.stderr)
    return client, client.search_runs([experiment])


def test_mlflow_run_without_its_data_names_the_project_parameters(tmp_path):
    client, runs = mlflow_run(tmp_path, "model=conv2", "data_root=cifar", "levels=1",
                              "overrides=dataset.download=false", succeeds=False)
    errors = [line for line in (tmp_path / "mlflow-run.log").read_text().splitlines()
              if line.startswith("error: ")]
    assert len(errors) == 1 and "CIFAR-10 not found under cifar" in errors[0]
    assert errors[0].endswith("-P data_root=FOLDER names the folder that holds it, "
                              "-P dataset=fake tries the preset on synthetic data")
    assert len(runs) == 1 and "spec.model.name" not in runs[0].data.params  # nothing started
    assert "CIFAR-10 not found" in runs[0].data.tags["mlflow.note.content"]  # not left empty
    assert not (tmp_path / "cifar").exists()  # no empty data folder


def test_mlflow_run_continues_its_run_as_the_parent(tmp_path):
    client, runs = mlflow_run(tmp_path, "spec=specs/quickstart.yaml", "levels=1", "iterations=20",
                              "overrides=training.eval_every=10;tracking.log_models=none;"
                              "controls.reinit=false")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3  # level 0, level 1 ticket + random_prune
    params = parents[0].data.params
    assert params["spec.training.duration"] == "20it" and params["spec.pruning.levels"] == "1"
    assert params["model"] == "lenet" and params["spec"] == "specs/quickstart.yaml"  # MLflow's own
    assert parents[0].data.tags["lth_suite.spec_hash"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_mlflow_run_vgg19_preset_on_fake_data(tmp_path):
    started = time.perf_counter()
    client, runs = mlflow_run(tmp_path, "model=vgg19", "dataset=fake", "iterations=2", "levels=1",
                              # fewer fake test images: VGG-19's evaluations on the CPU
                              "overrides=dataset.test_size=16;dataset.validation=16")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4  # level 0, level 1 ticket and both controls
    parent = parents[0]
    assert parent.data.params["model"] == "vgg19" and parent.data.params["spec.model.name"] == "vgg"
    assert parent.data.params["spec.training.duration"] == "2it"
    assert parent.data.tags["lth_suite.dataset_synthetic"] == "true"
    assert {r.info.status for r in runs} == {"FINISHED"}
    for child in children:
        assert {"val_loss", "test_accuracy", "early_stop_test_accuracy"} <= set(child.data.metrics)
        assert "mask.npz" in {a.path for a in client.list_artifacts(child.info.run_id)}
    ticket = next(c for c in children if c.data.params["branch"] == "ticket"
                  and c.data.params["level"] == "1")
    assert "state_dict.pt" in {a.path for a in client.list_artifacts(ticket.info.run_id)}
    assert client.get_metric_history(parent.info.run_id, "density")
    print(f"mlflow run vgg19 on fake data: {time.perf_counter() - started:.1f} s")
