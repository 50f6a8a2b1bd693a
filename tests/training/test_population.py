"""Population training equals training the members one by one (to float tolerance)."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.pruning.masks import Mask
from lth_suite.pruning.targets import random_mask_like
from lth_suite.spec.loading import build_spec
from lth_suite.training.population import Member, train_population, why_not_batchable
from lth_suite.training.result import snapshot
from lth_suite.training.single import train


@pytest.mark.parametrize("optimizer", [{"optimizer": "adam"},
                                       {"optimizer": "sgd", "momentum": 0.9, "nesterov": True,
                                        "weight_decay": 1e-3, "lr": 0.05}])
def test_population_matches_sequential_training(tiny, registry, plugins, optimizer):
    tiny["training"].update(duration="60it", eval_every=20, **optimizer)
    experiment = prepare(build_spec(tiny, registry), plugins)
    members = []
    for k in range(3):
        model = experiment.build_model(100 + k)
        generator = torch.Generator().manual_seed(k)
        mask = Mask.dense(model) if k == 0 else random_mask_like(Mask.dense(model), generator)
        if k:  # a sparser, genuinely different mask per member
            mask = random_mask_like(Mask({n: v & (torch.rand(v.shape, generator=generator) < 0.5)
                                          for n, v in mask.items()}), generator)
        members.append(Member(snapshot(model), mask, data_seed=10 + k, capture_at=frozenset({30})))
    template = experiment.build_model(0)
    together = train_population(template, members, experiment.data, experiment.config)
    for member, result in zip(members, together, strict=True):
        model = experiment.build_model(0)
        model.load_state_dict(member.state)
        alone = train(model, member.mask, experiment.data, experiment.config,
                      data_seed=member.data_seed, capture_at=member.capture_at)
        for name, tensor in alone.state.items():
            torch.testing.assert_close(result.state[name], tensor, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(result.captured[30]["fc1.weight"],
                                   alone.captured[30]["fc1.weight"], rtol=1e-4, atol=1e-5)
        assert [r["iteration"] for r in result.history] == [r["iteration"] for r in alone.history]
        for row_a, row_b in zip(result.history, alone.history):
            for key in ("train_loss", "val_loss", "test_loss"):
                if key in row_b:
                    assert row_a[key] == pytest.approx(row_b[key], rel=1e-4, abs=1e-5)
        pruned = {n: ~m for n, m in member.mask.items()}
        assert all(float(result.state[n][pruned[n]].abs().sum()) == 0.0 for n in pruned)


def test_batch_norm_networks_are_not_batchable(registry, plugins, tiny):
    tiny["model"] = {"name": "resnet", "depth": 8, "width": 4}
    experiment = prepare(build_spec(tiny, registry), plugins)
    assert "BatchNorm2d" in why_not_batchable(experiment.build_model(0))
    tiny["model"] = {"name": "mlp", "hidden": [8]}
    assert why_not_batchable(prepare(build_spec(tiny, registry), plugins).build_model(0)) is None


def test_population_experiment_matches_the_sequential_one(tiny, registry, plugins, tmp_path):
    tiny["experiment"]["replicates"] = 2
    tiny["training"]["population"] = "off"
    alone = run_experiment(build_spec(tiny, registry), plugins, f"sqlite:///{tmp_path / 'a.db'}")
    tiny["training"]["population"] = "on"
    together = run_experiment(build_spec(tiny, registry), plugins, f"sqlite:///{tmp_path / 'b.db'}")
    for one, two in zip(alone.levels, together.levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch)
            assert a.mask.equals(b.mask)
            for key, value in a.summary.items():
                assert b.summary[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key
    client = MlflowClient(f"sqlite:///{tmp_path / 'b.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 + 2 * (1 + 2 * 3) and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.parametrize(("choice", "device", "said"), [
    ("auto", "cuda", True), ("on", "cpu", True), ("auto", "cpu", False), ("off", "cuda", False)])
def test_a_batch_norm_network_falls_back_saying_so_where_a_population_was_wanted(
        tiny, registry, plugins, tracking_uri, notes, choice, device, said):
    from dataclasses import replace

    from lth_suite.lottery.trainer import Trainer

    tiny["model"] = {"name": "resnet", "depth": 8, "width": 4}
    tiny["training"]["population"] = choice
    experiment = prepare(build_spec(tiny, registry), plugins)
    model = experiment.build_model(0)
    # The device only steers the choice here: nothing is trained, so no GPU is needed.
    trainer = Trainer(replace(experiment, device=torch.device(device)), model, notes)
    assert not trainer.population  # trained one network at a time
    expected = "population training off: resnet: BatchNorm2d"
    assert [line.startswith(expected) for line in notes.lines] == ([True] if said else [])
