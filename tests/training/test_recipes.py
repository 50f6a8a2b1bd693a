"""Optimizers and learning-rate decays as plugin kinds, label smoothing, gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lth_suite.errors import SpecError
from lth_suite.lottery.experiment import recipe_components
from lth_suite.spec.loading import build_spec, canonical
from lth_suite.spec.sections import ExperimentSpec, Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.optimizers import FusedOptimizer
from lth_suite.training.recipes import Decay, OptimizerBuilder


def resolved(plugins, **training) -> TrainConfig:
    spec = build_spec({"training": {"duration": "100it", **training}}, plugins.registry)
    return TrainConfig.resolve(spec.training, 600, **recipe_components(spec, plugins))


def test_adamw_is_torchs_adamw_bit_for_bit():
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 3), nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    fused = FusedOptimizer(list(ours.parameters()), "adamw", 0.01, weight_decay=0.1)
    reference = torch.optim.AdamW(theirs.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    for step in range(5):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        for model, optimizer in ((ours, fused), (theirs, reference)):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for mine, reference_param in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, reference_param)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_every_built_in_optimizer_is_a_registered_builder(plugins, name):
    config = resolved(plugins, optimizer=name)
    assert isinstance(config.build_optimizer, OptimizerBuilder)
    optimizer = config.build_optimizer([nn.Parameter(torch.ones(2))], config)
    assert optimizer.kind == name and optimizer.lr == config.lr and not optimizer.has_state


@pytest.mark.parametrize("decay, final", [("cosine", 0.0), ("linear", 0.1)])
def test_warmup_then_a_decay(plugins, decay, final):
    config = resolved(plugins, lr=1.0, schedule={"warmup": "10it",
                                                 "decay": {"name": decay, "final": final}})
    assert isinstance(config.decay, Decay)
    assert config.lr_at(0) == pytest.approx(0.1) and config.lr_at(9) == pytest.approx(1.0)
    assert config.lr_at(10) == pytest.approx(1.0)
    middle = 0.5 * (1 + final) if decay == "cosine" else 1 - (1 - final) * 0.5
    assert config.lr_at(55) == pytest.approx(middle)
    lrs = [config.lr_at(i) for i in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > final
    if decay == "cosine":
        assert config.lr_at(99) == pytest.approx(final + (1 - final) * 0.5 * (
            1 + math.cos(math.pi * 89 / 90)))


def test_milestones_and_a_decay_are_exclusive(plugins):
    with pytest.raises(SpecError, match="training.schedule: .*milestones or a decay"):
        build_spec({"training": {"schedule": {"milestones": ["5it"], "decay": "cosine"}}},
                   plugins.registry)


def test_an_unknown_optimizer_or_decay_is_named(plugins):
    with pytest.raises(SpecError) as error:
        build_spec({"training": {"optimizer": "adamx", "schedule": {"decay": "cosin"}}},
                   plugins.registry)
    fields = [field for field, _ in error.value.problems]
    assert fields == ["training.optimizer.name", "training.schedule.decay.name"]


def test_specs_without_the_new_fields_keep_their_canonical_form():
    training = canonical(ExperimentSpec())["training"]
    assert training["optimizer"] == "adam" and "label_smoothing" not in training
    assert "clip_grad_norm" not in training and "decay" not in training["schedule"]
    modern = Training(optimizer="adamw", label_smoothing=0.1, clip_grad_norm=1.0,
                      schedule={"decay": "cosine"}).model_dump(mode="json")
    assert modern["label_smoothing"] == 0.1 and modern["schedule"]["decay"] == {"name": "cosine"}


def test_label_smoothing_and_clipping_change_the_training(registry):
    from lth_suite.pruning.masks import Mask
    from lth_suite.training.single import train

    from .test_training import INFO, splits

    results = {}
    for name, extra in {"plain": {}, "smoothed": {"label_smoothing": 0.2},
                        "clipped": {"clip_grad_norm": 1e-4}}.items():
        torch.manual_seed(0)
        model = registry.build("architecture", "mlp", {"hidden": [8]}, INFO)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        config = TrainConfig.resolve(Training(lr=0.01, batch_size=16, duration="5it",
                                              eval_every=5, **extra), 96)
        results[name] = train(model, Mask.dense(model), splits(), config, data_seed=0).state
        assert any(not torch.equal(results[name][k], start[k]) for k in start)  # it trained
    # Clipped to 1e-4, gradients come near Adam's eps, so its steps shrink.
    for name in ("smoothed", "clipped"):
        assert any(not torch.equal(results[name][k], results["plain"][k])
                   for k in results["plain"])
