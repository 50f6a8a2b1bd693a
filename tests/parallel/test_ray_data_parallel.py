"""Units trained data-parallel on 2 Ray ranks each (Gloo on the CPU) equal one process
with the same global batch; rank 0 alone logs; bad settings are one-line errors.

Shares one local Ray instance (2 CPUs) and one `mlflow server` for the module, as the
launcher tests do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.spec.loading import build_spec
from tests.lottery.test_resume import finished_branches
from tests.parallel.test_data_parallel import assert_same_experiment
from tests.parallel.test_launchers import (  # noqa: F401  (fixtures)
    HAS_RAY,
    faults,
    finished_once,
    invoke,
    parent_of,
    ray_cluster,
    runs_of,
    server,
)

pytestmark = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed: "
                                "pip install 'lth-suite[ray]' runs these tests")


@pytest.fixture
def data(tiny) -> dict:
    """The tiny spec, 1 level with a reinit control, its units on 2 Ray ranks each."""
    return {**tiny, "experiment": {**tiny["experiment"], "name": "ray-ranks"},
            "pruning": {**tiny["pruning"], "levels": 1},
            "controls": {"reinit": True, "random_prune": False},
            "tracking": {"log_models": "none"}, "report": {"enabled": False},
            "launcher": {"name": "ray", "ranks_per_unit": 2}}


def test_two_ray_ranks_per_unit_train_as_one_process_with_the_same_global_batch(
        data, write_spec, server, ray_cluster, plugins, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 0, result.output
    assert result.output.count("r0-level1-reinit:") == 1  # the progress of rank 0 alone
    local = f"sqlite:///{tmp_path / 'one.db'}"
    run_experiment(build_spec({**data, "launcher": "local"}, plugins.registry), plugins, local)
    parent, branches = finished_branches(server)  # one parent run: only rank 0 logged
    assert_same_experiment(branches, finished_branches(local)[1])
    client = MlflowClient(server)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 + 3  # every child once: rank 1 created none
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_rank_killed_mid_unit_restarts_its_group_and_the_experiment_completes(
        data, write_spec, server, faults, tmp_path):  # noqa: F811
    marker = tmp_path / "killed.marker"
    data["experiment"] = {**data["experiment"], "name": "killed-rank"}
    data["pruning"] = {**data["pruning"], "criterion": {
        "name": "fault", "marker": str(marker), "level": 1, "mode": "kill"}}
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 0, result.output
    assert marker.exists()  # rank 0 of r0-level1-ticket killed its own process
    parent = parent_of(server, "killed-rank")
    _, children = runs_of(server, "killed-rank")
    assert set(finished_once(children, parent)) == {
        ("0", "0", "ticket"), ("0", "1", "ticket"), ("0", "1", "reinit")}


@pytest.mark.parametrize(("setting", "expected"), [
    ({"ranks_per_unit": 0}, "launcher.ranks_per_unit"),
    ({"ranks_per_unit": "two"}, "launcher.ranks_per_unit"),
    ({"ranks_per_unit": 2, "num_gpus_per_unit": 0.5},
     "num_gpus_per_unit: 0.5 with ranks_per_unit 2: each rank needs whole GPUs"),
    ({"ranks_per_unit": 2, "rank_placement": "RANDOM"}, "launcher.rank_placement"),
])
def test_bad_rank_settings_are_one_line_errors(data, write_spec, setting, expected, tmp_path):
    data["launcher"] = {"name": "ray", **setting}
    result = invoke("run", write_spec(data), "--tracking-uri", "http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output


def test_a_batch_that_does_not_split_over_the_ranks_is_an_error_before_any_run(
        data, write_spec, server):  # noqa: F811
    data["training"] = {**data["training"], "batch_size": 61}
    data["experiment"] = {**data["experiment"], "name": "odd-batch"}
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "error: training.batch_size: 61 does not split evenly over the 2 ranks of each unit "
        "(launcher.ranks_per_unit)")
    assert MlflowClient(server).get_experiment_by_name("odd-batch") is None


def test_ranks_that_cannot_fit_the_local_instance_are_an_error_before_any_run(
        data, write_spec, server, ray_cluster):  # noqa: F811
    data["launcher"] = {"name": "ray", "ranks_per_unit": 3}
    data["experiment"] = {**data["experiment"], "name": "too-many-ranks"}
    result = invoke("run", write_spec(data), "--tracking-uri", server)
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(
        "launcher.ranks_per_unit: 3 ranks of 1 CPU each do not fit the local Ray instance's "
        "2 CPUs")
    assert MlflowClient(server).get_experiment_by_name("too-many-ranks") is None


def test_the_readme_shows_ranks_per_unit():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "ranks_per_unit" in readme
