"""The training loop's shortcuts change nothing: fast optimizer steps, skipped seeding,
dense layers without mask multiplies; and the loop reports where its time went."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth_suite.pruning.masks import Mask
from lth_suite.spec.sections import Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.data import DataInfo, Splits
from lth_suite.training.optimizers import FusedOptimizer
from lth_suite.training.single import draws_random_numbers, make_optimizer, train

INFO = DataInfo("t", (1, 4, 4), 3)

OPTIMIZERS = {
    "adam": {"optimizer": "adam", "lr": 0.01},
    "adam_wd": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01},
    "sgd": {"optimizer": "sgd", "lr": 0.1},
    "sgd_momentum": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    "sgd_nesterov_wd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                        "weight_decay": 5e-4},
}


def splits(n: int = 96) -> Splits:
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(16, 3, generator=generator)

    def part(size):
        x = torch.randn(size, *INFO.input_shape, generator=generator)
        return x, (x.flatten(1) @ w).argmax(1)

    return Splits(*part(n), *part(24), *part(24), INFO)


def config(**overrides) -> TrainConfig:
    fields = {"optimizer": "adam", "lr": 0.01, "batch_size": 16, "duration": "30it",
              "eval_every": 10, **overrides}
    return TrainConfig.resolve(Training(**fields), 96)


def torch_optimizer(model: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """torch.optim's own fused optimizer for the same settings."""
    settings = dict(settings)
    kind = settings.pop("optimizer")
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), fused=True, **settings)
    return torch.optim.SGD(model.parameters(), fused=True, **settings)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fused_optimizer_is_torch_optims_own_update_bit_for_bit(registry, optimizer):
    cfg = config(**OPTIMIZERS[optimizer])
    torch.manual_seed(0)
    reference = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    ours = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    ours.load_state_dict(reference.state_dict())
    theirs, fused = torch_optimizer(reference, OPTIMIZERS[optimizer]), make_optimizer(ours, cfg)
    generator = torch.Generator().manual_seed(1)
    for i in range(12):
        lr = 0.01 * (i + 1)  # a changing learning rate is read at every step
        theirs.param_groups[0]["lr"] = fused.lr = lr
        grads = [torch.randn(p.shape, generator=generator) for p in reference.parameters()]
        for model in (reference, ours):
            for index, (p, g) in enumerate(zip(model.parameters(), grads)):
                # one parameter misses its gradient at some steps: skipped, state not advanced
                p.grad = None if index == 1 and i % 4 == 2 else g.clone()
        theirs.step()
        fused.step()
        for a, b in zip(reference.parameters(), ours.parameters()):
            assert torch.equal(a, b), i


def test_fused_optimizer_skips_a_parameter_without_gradient(registry):
    model = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    optimizer = make_optimizer(model, config())
    params = list(model.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    params[0].grad = None
    before = params[0].detach().clone()
    optimizer.step()
    assert torch.equal(params[0], before)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_fused_optimizer_names_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        FusedOptimizer([nn.Parameter(torch.zeros(3))], "rmsprop", 0.1)


def test_training_never_builds_a_torch_optimizer(registry, monkeypatch):
    """torch.optim's constructor imports torch._dynamo (about a second): the loop needs none."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.optim.Optimizer built")

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", refuse)
    model = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    result = train(model, Mask.dense(model), splits(), config(), data_seed=0)
    assert result.history[-1]["iteration"] == 30


class Noisy(nn.Module):
    """Randomness the loop cannot know about: a module from outside torch.nn and lth_suite."""

    def forward(self, x):  # noqa: D102
        return x + 0.1 * torch.randn_like(x) if self.training else x


def test_only_models_without_randomness_skip_the_per_step_seed(registry):
    assert not draws_random_numbers(registry.build("architecture", "mlp", {}, INFO))
    assert not draws_random_numbers(registry.build("architecture", "conv",
                                                   {"width": 2, "hidden": [4]}, INFO))
    assert draws_random_numbers(registry.build("architecture", "mlp", {"dropout": 0.5}, INFO))
    assert draws_random_numbers(nn.Sequential(nn.Flatten(), nn.RReLU()))
    assert draws_random_numbers(nn.LSTM(4, 4, num_layers=2, dropout=0.5))  # dropout inside
    assert draws_random_numbers(nn.Sequential(nn.Flatten(), Noisy()))


def test_a_model_with_unknown_randomness_is_still_seeded_per_step(registry):
    def run(global_seed: int):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), Noisy(), nn.Linear(16, 3))
        torch.manual_seed(global_seed)  # whatever the caller's RNG holds must not matter
        return train(model, Mask.dense(model), splits(), config(), data_seed=3)

    a, b = run(1), run(2)
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_dense_layers_beside_pruned_ones_train_and_pruned_weights_stay_zero(registry):
    torch.manual_seed(0)
    model = registry.build("architecture", "mlp", {"hidden": [12, 8]}, INFO)
    dense = Mask.dense(model)
    keep = {k: v.clone() for k, v in dense.items()}
    keep["fc2.weight"] = torch.rand(keep["fc2.weight"].shape) < 0.3  # only this one pruned
    mask = Mask(keep)
    result = train(model, mask, splits(), config(), data_seed=0)
    assert torch.all(result.state["fc2.weight"][~mask["fc2.weight"]] == 0)
    assert bool((result.state["fc1.weight"] != 0).all())


def test_timings_split_steps_from_evaluation_and_survive_releasing_weights(registry):
    model = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    result = train(model, Mask.dense(model), splits(), config(), data_seed=0)
    assert set(result.timings) == {"steps", "evaluation"}
    assert result.timings["steps"] > 0 and result.timings["evaluation"] > 0
    result.release_weights()
    assert result.state == {} and set(result.timings) == {"steps", "evaluation"}


def test_run_ends_with_where_the_time_went(tiny, write_spec, tracking_uri):
    import re

    from typer.testing import CliRunner

    from lth_suite.cli import app

    tiny["report"] = {"enabled": False}
    result = CliRunner().invoke(app, ["run", str(write_spec(tiny)), "--tracking-uri",
                                      tracking_uri])
    assert result.exit_code == 0, result.output
    line = re.search(r"time: training steps ([\d.]+) s, evaluation ([\d.]+) s, logging and "
                     r"checkpoints ([\d.]+) s \(\+(\d+)%\)", result.output)
    assert line, result.output
    steps, evaluation, rest, percent = map(float, line.groups())
    # Printed to 0.1 s: a quick machine trains the tiny spec's steps in under 0.05 s.
    assert min(steps, evaluation, rest) >= 0 and percent > 0
    if steps >= 1:
        assert abs(percent - 100 * (evaluation + rest) / steps) < 15


def test_live_logging_counts_neither_as_steps_nor_as_evaluation(registry):
    import time

    model = registry.build("architecture", "mlp", {"hidden": [12]}, INFO)
    calls: list[int] = []

    def slow_write(rows) -> None:  # a live write to a slow store
        calls.append(len(rows))
        time.sleep(0.05)

    began = time.perf_counter()
    result = train(model, Mask.dense(model), splits(), config(), data_seed=0, evaluated=slow_write)
    wall = time.perf_counter() - began
    written = 0.05 * len(calls)
    assert calls and result.timings["evaluation"] < written
    assert result.timings["steps"] + result.timings["evaluation"] <= wall - 0.9 * written
