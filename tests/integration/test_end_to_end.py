"""End to end: spec -> runner -> MLflow, through the CLI and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from lth_suite.cli import app
from lth_suite.errors import PluginFailure
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.analyzers import Analysis
from lth_suite.plugins.hookspecs import hookimpl
from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning.masks import Mask
from lth_suite.spec.loading import build_spec, spec_hash


def runs_of(uri: str) -> list:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def split(runs: list) -> tuple:
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_cli_run_logs_parent_children_metrics_artifacts_and_model(tiny, write_spec, tracking_uri):
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    parents, children = split(runs_of(tracking_uri))
    assert len(parents) == 1 and len(children) == 1 + 2 * 3
    parent = parents[0]
    client = MlflowClient(tracking_uri)
    assert {r.info.status for r in parents + children} == {"FINISHED"}
    tags = parent.data.tags
    assert tags["lth_suite.spec_hash"] == spec_hash(build_spec(tiny, load_plugins(installed=False).registry))
    assert tags["lth_suite.version"] and "lth_suite.builtin.criteria" in tags["lth_suite.plugins"]
    assert parent.data.params["spec.training.lr"] == "0.003"
    assert "spec.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    levels = client.get_metric_history(parent.info.run_id, "ticket/early_stop_test_accuracy")
    assert sorted(m.step for m in levels) == [0, 1, 2]
    assert sorted(m.step for m in client.get_metric_history(parent.info.run_id,
                                                           "reinit/early_stop_test_accuracy")) == [1, 2]
    branches = sorted((int(c.data.params["level"]), c.data.params["branch"]) for c in children)
    assert branches == [(0, "ticket")] + [(lv, b) for lv in (1, 2)
                                          for b in ("random_prune", "reinit", "ticket")]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy",
                "val_loss", "train_loss", "test_accuracy"} <= set(child.data.metrics)
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == [0, 20, 40]
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"mask.npz",
                                                                               "state_dict.pt"}
        path = client.download_artifacts(child.info.run_id, "mask.npz")
        with open(path, "rb") as handle:
            mask = Mask.unpack(handle.read())
        assert abs(mask.density() - float(child.data.params["density"])) < 1e-5
    models = mlflow.search_logged_models(experiment_ids=[parent.info.experiment_id],
                                         output_format="list")
    assert [m.name for m in models] == ["ticket-r0-level2"]  # log_models: final
    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pytorch.load_model(models[0].model_uri)
    assert loaded(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_same_spec_twice_gives_identical_masks_and_metrics(tiny_spec, plugins, tmp_path):
    first = run_experiment(tiny_spec, plugins, f"sqlite:///{tmp_path / 'a.db'}")
    second = run_experiment(tiny_spec, plugins, f"sqlite:///{tmp_path / 'b.db'}")
    for one, two in zip(first.levels, second.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.branch, a.replicate) == (b.branch, b.replicate)
            assert a.mask.equals(b.mask)
            assert a.result.history == b.result.history
    assert first.summary == second.summary


def test_controls_share_or_differ_as_defined(tiny_spec, plugins, tracking_uri):
    finished = run_experiment(tiny_spec, plugins, tracking_uri)
    level = finished.levels[1]
    ticket, reinit, random_prune = (level.of(b)[0] for b in ("ticket", "reinit", "random_prune"))
    assert reinit.mask.equals(ticket.mask)
    assert random_prune.mask.kept() == ticket.mask.kept()
    assert not random_prune.mask.equals(ticket.mask)
    assert ticket.mask.is_subset_of(finished.levels[0].branches[0].mask)
    assert finished.levels[2].of("ticket")[0].mask.is_subset_of(ticket.mask)


def raising_criterion(error: BaseException) -> object:
    """A plugin whose criterion ``boom`` raises ``error`` at the first pruned level."""

    class Plugin:
        @hookimpl
        def lth_register_criteria(self, register):
            def criterion(request):
                raise error
            register("boom", lambda params: criterion)

    return Plugin()


@pytest.mark.parametrize("error, raised, status", [
    (RuntimeError("boom"), PluginFailure, "FAILED"), (KeyboardInterrupt(), KeyboardInterrupt, "KILLED")])
def test_a_stopped_experiment_leaves_no_run_running(tiny, tracking_uri, error, raised, status):
    plugins = load_plugins(extra=[raising_criterion(error)], installed=False)
    tiny["pruning"]["criterion"] = "boom"
    with pytest.raises(raised):
        run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri)
    parents, children = split(runs_of(tracking_uri))
    assert parents[0].info.status == status
    by_name = {c.info.run_name: c for c in children}
    assert by_name["r0-level0-ticket"].info.status == "FINISHED"
    failed = by_name["r0-level1-ticket"]  # the branch whose pruning raised
    assert failed.info.status == status and set(by_name) == {"r0-level0-ticket", "r0-level1-ticket"}
    if raised is PluginFailure:
        reason = "criterion 'boom' from plugin Plugin raised RuntimeError: boom"
        assert failed.data.tags["lth_suite.error"] == reason
        assert parents[0].data.tags["lth_suite.error"] == reason


def test_a_failing_plugin_run_exits_1_naming_the_plugin(tiny, write_spec, tracking_uri,
                                                        monkeypatch):
    import lth_suite.plugins.manager as plugins_module

    real = plugins_module.load_plugins
    monkeypatch.setattr(plugins_module, "load_plugins", lambda **kw: real(
        extra=[raising_criterion(ValueError("no scores"))], installed=False))
    tiny["pruning"]["criterion"] = "boom"
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri", tracking_uri])
    assert result.exit_code == 1
    assert "criterion 'boom' from plugin Plugin raised ValueError: no scores" in result.output
    assert "Traceback" not in result.output


def test_lifecycle_hooks_and_analyzers_see_every_level(tiny, tracking_uri):
    seen: dict[str, list] = {"levels": [], "finished": []}

    class Counter:
        def after_level(self, event):
            rows = [{"branch": b.branch, "kept": sum(b.mask.kept().values())}
                    for b in event.branches]
            return Analysis(metrics={"branches": len(rows)}, table=rows)

        def after_experiment(self, event):
            return {"levels": len(event.levels)}

    class Listener:
        @hookimpl
        def lth_register_analyzers(self, register):
            register("counter", lambda params: Counter())

        @hookimpl
        def lth_level_finished(self, event):
            seen["levels"].append((event.level, sorted(b.branch for b in event.branches)))

        @hookimpl
        def lth_experiment_finished(self, event):
            seen["finished"].append(len(event.levels))

    plugins = load_plugins(extra=[Listener()], installed=False)
    tiny["analyzers"] = ["counter"]
    finished = run_experiment(build_spec(tiny, plugins.registry), plugins, tracking_uri)
    assert seen["levels"] == [(0, ["ticket"]), (1, ["random_prune", "reinit", "ticket"]),
                              (2, ["random_prune", "reinit", "ticket"])]
    assert seen["finished"] == [3]
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(finished.parent_run_id, "counter/branches")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 1.0), (1, 3.0), (2, 3.0)]
    assert client.get_run(finished.parent_run_id).data.metrics["counter/levels"] == 3.0
    table = client.download_artifacts(finished.parent_run_id, "analysis/counter/level_02.json")
    rows = json.loads(Path(table).read_text())["rows"]
    ticket = next(r for r in rows if r["branch"] == "ticket")
    assert ticket["kept"] == sum(finished.levels[2].of("ticket")[0].mask.kept().values())
    assert all(not b.result.state for lv in finished.levels for b in lv.branches)  # released
