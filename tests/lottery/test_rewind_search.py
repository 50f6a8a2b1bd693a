"""``rewind: auto``: the rewind point chosen per replicate by instability (Frankle et al. 2020)."""

from __future__ import annotations

import copy
import json

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.lottery.experiment import prepare
from lth_suite.lottery.rewind_search import RewindSearch
from lth_suite.lottery.runner import LotteryRunner
from lth_suite.spec.loading import build_spec
from lth_suite.testing import TINY
from lth_suite.tracking import open_tracker
from lth_suite.tracking.names import rewind_search_artifact, rewind_search_metric, rewind_search_tag

CANDIDATES = [0, 5, 10, 20]


def auto_spec(**rewind) -> dict:
    data = copy.deepcopy(TINY)
    data["model"]["hidden"] = [16]
    data["experiment"]["replicates"] = 2
    data["training"].update(duration="30it", eval_every=10)
    data["controls"] = {"reinit": False, "random_prune": False}
    data["tracking"] = {"log_models": "none"}
    data["rewind"] = {"name": "auto", "candidates": CANDIDATES, "threshold": 0.02, "points": 3,
                      **rewind}
    return data


def stub_paths(curves: dict[int, dict[int, float]], calls: list):
    """An instability stub: replicate -> candidate -> barrier, as a three-point path."""
    def paths(self, planner, replicates, candidate):
        calls.append((tuple(replicates), candidate))
        return {r: [{"alpha": 0.0, "error": 0.1, "loss": 1.0},
                    {"alpha": 0.5, "error": 0.1 + curves[r][candidate], "loss": 1.0},
                    {"alpha": 1.0, "error": 0.1, "loss": 1.0}] for r in replicates}
    return paths


def runner(data, plugins, uri, **kwargs) -> LotteryRunner:
    return LotteryRunner(prepare(build_spec(data, plugins.registry), plugins), open_tracker(uri),
                         **kwargs)


CURVES = {0: {0: 0.30, 5: 0.05, 10: 0.01, 20: 0.0},  # stable from 10
          1: {0: 0.50, 5: 0.40, 10: 0.30, 20: 0.25}}  # never stable: the last candidate


@pytest.fixture
def stubbed(monkeypatch):
    calls: list = []
    monkeypatch.setattr(RewindSearch, "paths", stub_paths(CURVES, calls))
    return calls


def test_the_earliest_candidate_under_the_threshold_is_chosen_and_the_search_stops(
        stubbed, plugins, tracking_uri):
    lottery = runner(auto_spec(), plugins, tracking_uri)
    finished = lottery.run()
    # Replicate 0 stops at 10 (20 is never measured for it); replicate 1 measures all.
    assert stubbed == [((0, 1), 0), ((0, 1), 5), ((0, 1), 10), ((1,), 20)]
    assert lottery.planner.states[0].captured_iteration == 10
    assert lottery.planner.states[1].captured_iteration == 20
    for event in finished.levels[1:]:
        assert event.rewind_points[0].start_iteration == 10
        assert event.rewind_points[1].start_iteration == 20
    for branch in finished.levels[1].branches:  # the pruned level trained from the point
        assert branch.result.history[0]["iteration"] >= branch.replicate * 0 + 10


def test_the_curve_and_the_choice_are_logged_on_the_parent_run(stubbed, plugins, tracking_uri):
    parent = runner(auto_spec(), plugins, tracking_uri).run().parent_run_id
    client = MlflowClient(tracking_uri)
    tags = client.get_run(parent).data.tags
    assert tags[rewind_search_tag(0)] == "10" and tags[rewind_search_tag(1)] == "20"
    curve = [(m.step, round(m.value, 6)) for m in client.get_metric_history(
        parent, rewind_search_metric(0, "barrier"))]
    assert sorted(curve) == [(0, 0.3), (5, 0.05), (10, 0.01)]
    logged = json.loads(open(client.download_artifacts(parent, rewind_search_artifact(1))).read())
    assert logged["chosen"] == 20 and logged["stable"] is False
    assert [row["iteration"] for row in logged["curve"]] == CANDIDATES
    assert logged["trainings"] == 8 and logged["candidates"] == CANDIDATES


def test_resume_reads_the_choice_back_instead_of_measuring(monkeypatch, stubbed, plugins,
                                                          tracking_uri):
    first = runner(auto_spec(), plugins, tracking_uri)
    first.open_parent()
    first.run_level(0)
    first.run_level(1)
    first.recorder.end_all(KeyboardInterrupt())  # interrupted before level 2
    measured = len(stubbed)

    def never(*args):
        raise AssertionError("the rewind point was measured again")

    monkeypatch.setattr(RewindSearch, "paths", never)
    resumed = runner(auto_spec(), plugins, tracking_uri, resume=first.recorder.parent)
    finished = resumed.run()
    assert len(stubbed) == measured
    assert [finished.levels[2].rewind_points[r].start_iteration for r in (0, 1)] == [10, 20]
    assert all(b.restored for b in finished.levels[1].branches)
    assert not any(b.restored for b in finished.levels[2].branches)


def test_a_unit_in_another_process_reads_the_choice_back(monkeypatch, stubbed, plugins,
                                                        tracking_uri):
    whole = runner(auto_spec(), plugins, tracking_uri)
    whole.open_parent()
    whole.run_level(0)
    whole.run_level(1)
    monkeypatch.setattr(RewindSearch, "paths", lambda *a: pytest.fail("measured again"))
    unit = runner(auto_spec(), plugins, tracking_uri)
    unit.run_unit(whole.recorder.parent, 1, 2, "ticket")
    assert unit.planner.states[1].captured_iteration == 20


def test_a_real_search_on_digits_is_deterministic(plugins, tmp_path, capsys):
    data = auto_spec(threshold=0.5)
    data["experiment"]["replicates"] = 1
    data["pruning"]["levels"] = 1
    runs = [runner(data, plugins, f"sqlite:///{tmp_path / f'{i}.db'}") for i in range(2)]
    for lottery in runs:
        lottery.run()
    curves = []
    for i, lottery in enumerate(runs):
        client = MlflowClient(f"sqlite:///{tmp_path / f'{i}.db'}")
        path = client.download_artifacts(lottery.recorder.parent, rewind_search_artifact(0))
        curves.append(json.loads(open(path).read()))
    assert curves[0]["curve"] == curves[1]["curve"] and curves[0]["chosen"] == curves[1]["chosen"]
    row = curves[0]["curve"][0]
    assert len(row["errors"]) == 3 and all(0 <= e <= 1 for e in row["errors"])
    assert row["barrier"] == pytest.approx(max(row["errors"]) - (row["errors"][0] + row["errors"][-1]) / 2)
    assert curves[0]["chosen"] in CANDIDATES and curves[0]["trainings"] == 2 * len(curves[0]["curve"])


def test_population_and_budget_train_the_copies(plugins, tracking_uri):
    data = auto_spec(threshold=0.5, iterations="5it")
    data["training"]["population"] = "on"
    data["pruning"]["levels"] = 1
    lottery = runner(data, plugins, tracking_uri)
    assert lottery.trainer.population
    lottery.run()
    assert lottery.planner.states[0].captured_iteration in CANDIDATES


@pytest.mark.parametrize("rewind, field", [
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": 0}, "threshold"),
    ({"candidates": []}, "candidates"),
    ({"candidates": [10, 5]}, "candidates"),
    ({"candidates": [0, 30]}, "candidates"),  # the training is 30 iterations
    ({"candidates": ["0it", "1ep", "10it"]}, "candidates"),  # 1ep is 21 iterations
])
def test_bad_input_is_one_line_naming_the_field_before_any_run(rewind, field, write_spec,
                                                              tracking_uri, tmp_path):
    result = CliRunner().invoke(app, ["run", str(write_spec(auto_spec(**rewind))),
                                      "--tracking-uri", tracking_uri])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "rewind" in lines[0] and field in lines[0], result.output
    assert not (tmp_path / "mlflow.db").exists() or not MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()])


def test_local_workers_train_the_copies_as_the_driver_does(plugins, tmp_path, monkeypatch):
    from lth_suite.launch.execute import run_experiment
    from lth_suite.lottery import rewind_search

    sent: list[int] = []
    on_workers = rewind_search.on_workers
    monkeypatch.setattr(rewind_search, "on_workers", lambda pool, experiment, copies: (
        sent.append(len(copies)), on_workers(pool, experiment, copies))[1])
    data = auto_spec(threshold=0.5)
    data["pruning"]["levels"] = 1
    curves = []
    for launcher in ({"name": "local"}, {"name": "local", "workers": 2}):
        uri = f"sqlite:///{tmp_path / f'{len(curves)}.db'}"
        finished = run_experiment(build_spec({**data, "launcher": launcher}, plugins.registry),
                                  plugins, uri)
        client = MlflowClient(uri)
        curves.append([json.loads(open(client.download_artifacts(
            finished.parent_run_id, rewind_search_artifact(r))).read()) for r in (0, 1)])
    assert sent and sent[0] == 4  # two copies of each replicate, on the workers
    for alone, pooled in zip(*curves, strict=True):
        assert [row["errors"] for row in pooled["curve"]] == [row["errors"] for row in alone["curve"]]
        assert pooled["chosen"] == alone["chosen"]
