"""A NaN or infinite loss stops that training at once; the spec decides what follows."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

import lth_suite.lottery.trainer as trainer_module
from lth_suite.errors import Diverged
from lth_suite.launch.execute import run_experiment
from lth_suite.pruning.masks import Mask
from lth_suite.spec.loading import build_spec
from lth_suite.training.loop import LossWindow


def runs(uri: str) -> dict:
    client = MlflowClient(uri)
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {r.info.run_name: r for r in found}


def test_loss_window_names_the_first_non_finite_iteration():
    window = LossWindow(4, torch.device("cpu"))
    for iteration, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        window.add(torch.tensor(value), iteration)
    assert window.mean_and_reset() == [pytest.approx(3.0)]
    window.add(torch.tensor(1.0), 10)
    window.add(torch.tensor(float("inf")), 11)
    window.add(torch.tensor(float("nan")), 12)
    with pytest.raises(Diverged) as caught:
        window.flush()
    assert caught.value.iteration == 11 and "inf at iteration 11" in str(caught.value)


def test_a_diverging_training_fails_its_child_run_and_stops_the_experiment(tiny, registry,
                                                                          plugins, tracking_uri):
    tiny["training"].update(optimizer="sgd", lr=1e30, duration="200it", eval_every=50)
    with pytest.raises(Diverged) as caught:
        run_experiment(build_spec(tiny, registry), plugins, tracking_uri)
    found = runs(tracking_uri)
    dense = found["r0-level0-ticket"]
    assert dense.info.status == "FAILED"
    assert f"at iteration {caught.value.iteration}" in dense.data.tags["lth_suite.error"]
    assert caught.value.iteration < 100  # stopped at once, not at the end of training
    parent = next(r for name, r in found.items() if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED" and "diverged" in parent.data.tags["lth_suite.error"]


def test_skip_leaves_out_a_diverged_control_and_goes_on(tiny, registry, plugins, tracking_uri,
                                                        monkeypatch):
    real_train, calls = trainer_module.train, []

    def train(model, mask: Mask, *args, **kwargs):
        calls.append(mask.density())
        if len(calls) == 3:  # dense, level-1 ticket, then the level-1 reinit control
            raise Diverged(7, float("nan"))
        return real_train(model, mask, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train", train)
    tiny["training"]["on_divergence"] = "skip"
    finished = run_experiment(build_spec(tiny, registry), plugins, tracking_uri)
    assert [sorted(b.branch for b in level.branches) for level in finished.levels] == [
        ["ticket"], ["random_prune", "ticket"], ["random_prune", "reinit", "ticket"]]
    found = runs(tracking_uri)
    assert found["r0-level1-reinit"].info.status == "FAILED"
    assert "at iteration 7" in found["r0-level1-reinit"].data.tags["lth_suite.error"]
    parent = next(r for r in found.values() if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    assert "reinit/early_stop_test_accuracy" not in finished.summary[1]
    assert "reinit/early_stop_test_accuracy" in finished.summary[2]
