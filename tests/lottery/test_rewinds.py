"""Every registered rewind returns the right weights and the right place in the schedule."""

from __future__ import annotations

import pytest
import torch

from lth_suite.lottery.rewinding import RewindContext, RewindPoint
from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning.masks import Mask
from lth_suite.spec.sections import Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.data import DataInfo, Splits
from lth_suite.training.result import snapshot
from lth_suite.training.single import train

REWINDS = load_plugins(installed=False).registry.names("rewind")
PARAMS = {"step": {"iteration": "5it"}, "auto": {"candidates": ["0it", "5it"]}}
INFO = DataInfo("t", (10,), 3)


def splits(seed: int = 0) -> Splits:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(10, 3, generator=generator)

    def part(n):
        x = torch.randn(n, 10, generator=generator)
        return x, (x @ w).argmax(1)

    return Splits(*part(80), *part(20), *part(20), INFO)


def config(**overrides) -> TrainConfig:
    fields = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 16,
              "duration": "12it", "eval_every": 4,
              "schedule": {"milestones": ["6it", "9it"], "gamma": 0.5}}
    fields.update(overrides)
    return TrainConfig.resolve(Training(**fields), 80)


def model(registry, seed: int = 0):
    torch.manual_seed(seed)
    return registry.build("architecture", "mlp", {"hidden": [16]}, INFO)


def states_equal(a, b) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(params=REWINDS)
def rewind(request, registry):
    return request.param, registry.build("rewind", request.param, PARAMS.get(request.param, {}))


@pytest.fixture
def dense_run(registry):
    """A dense training with the rewind point captured, and its init."""
    cfg = config()
    net = model(registry)
    init = snapshot(net)
    result = train(net, Mask.dense(net), splits(), cfg, data_seed=3, capture_at=frozenset({5}))
    return cfg, init, result


def test_every_rewind_returns_a_known_state_and_a_valid_start(rewind, dense_run):
    name, strategy = rewind
    cfg, init, result = dense_run
    capture = strategy.capture_iteration(cfg)
    assert capture is None or 0 <= capture <= cfg.total
    captured = result.captured.get(capture) if capture is not None else None
    chosen = None
    if hasattr(strategy, "candidate_iterations"):  # the lottery chooses its point: say 5
        assert strategy.candidate_iterations(cfg) == [0, 5]
        captured, chosen = result.captured[5], 5
    point = strategy(RewindContext(init, captured, result.state, cfg, chosen))
    assert isinstance(point, RewindPoint)
    assert 0 <= point.start_iteration < cfg.total
    assert set(point.state) == set(init)
    candidates = [init, result.state] + ([captured] if captured is not None else [])
    assert any(states_equal(point.state, c) for c in candidates), name
    assert point.constant_lr is None or point.constant_lr > 0


def test_init_returns_the_init_state_from_zero(registry, dense_run):
    cfg, init, result = dense_run
    strategy = registry.build("rewind", "init", {})
    assert strategy.capture_iteration(cfg) is None
    point = strategy(RewindContext(init, None, result.state, cfg))
    assert states_equal(point.state, init)
    assert not states_equal(point.state, result.state)
    assert point.start_iteration == 0 and point.constant_lr is None


@pytest.mark.parametrize("k", [0, 5, 12])
def test_step_returns_the_weights_at_iteration_k(registry, k):
    cfg = config()
    net = model(registry)
    init = snapshot(net)
    full = train(net, Mask.dense(net), splits(), cfg, data_seed=3, capture_at=frozenset({k}))
    assert set(full.captured) == {k}

    # A separate run stopped at k, from the same init and the same data seed.
    stopped_cfg = config(duration=f"{k}it") if k else None
    short = model(registry)
    short.load_state_dict(init)
    if stopped_cfg is not None:
        train(short, Mask.dense(short), splits(), stopped_cfg, data_seed=3)
    assert states_equal(full.captured[k], snapshot(short))
    if 0 < k < cfg.total:
        assert not states_equal(full.captured[k], init)
        assert not states_equal(full.captured[k], full.state)

    strategy = registry.build("rewind", "step", {"iteration": f"{k}it"})
    assert strategy.capture_iteration(cfg) == k
    point = strategy(RewindContext(init, full.captured[k], full.state, cfg))
    assert states_equal(point.state, full.captured[k])
    assert point.start_iteration == k and point.constant_lr is None


def test_step_in_epochs_converts_with_the_epoch_length(registry):
    cfg = config(duration="20it")  # 80 examples / 16 = 5 iterations per epoch
    assert cfg.per_epoch == 5
    assert registry.build("rewind", "step", {"iteration": "2ep"}).capture_iteration(cfg) == 10
    assert registry.build("rewind", "step", {"iteration": "0.4ep"}).capture_iteration(cfg) == 2


def test_step_resumed_from_k_matches_the_full_run(registry):
    """Plain SGD has no optimizer state: resuming at k must reproduce the full run exactly."""
    cfg = config(momentum=0.0)
    net = model(registry)
    full = train(net, Mask.dense(net), splits(), cfg, data_seed=3, capture_at=frozenset({6}))
    strategy = registry.build("rewind", "step", {"iteration": "6it"})
    point = strategy(RewindContext({}, full.captured[6], full.state, cfg))
    resumed = model(registry, seed=9)
    resumed.load_state_dict(point.state)
    again = train(resumed, Mask.dense(resumed), splits(), cfg, data_seed=3,
                  start_iteration=point.start_iteration)
    assert states_equal(again.state, full.state)
    assert again.history[0]["iteration"] == 6
    assert again.history[-1]["iteration"] == cfg.total
    assert again.history[-1]["val_loss"] == full.history[-1]["val_loss"]


def test_lr_returns_trained_weights_and_replays_the_schedule(registry, dense_run):
    cfg, init, result = dense_run
    strategy = registry.build("rewind", "lr", {})
    assert strategy.capture_iteration(cfg) is None
    point = strategy(RewindContext(init, None, result.state, cfg))
    assert states_equal(point.state, result.state)
    assert point.start_iteration == 0 and point.constant_lr is None


def test_finetune_returns_trained_weights_at_the_final_lr(registry, dense_run):
    cfg, init, result = dense_run
    strategy = registry.build("rewind", "finetune", {})
    assert strategy.capture_iteration(cfg) is None
    point = strategy(RewindContext(init, None, result.state, cfg))
    assert states_equal(point.state, result.state)
    assert point.start_iteration == 0
    # Two milestones (6, 9) before the last iteration (11), gamma 0.5.
    assert point.constant_lr == pytest.approx(0.1 * 0.5 ** 2)
    assert point.constant_lr == pytest.approx(cfg.lr_at(cfg.total - 1))


def test_finetune_without_schedule_keeps_the_base_lr(registry, dense_run):
    _, init, result = dense_run
    cfg = config(schedule={})
    point = registry.build("rewind", "finetune", {})(RewindContext(init, None, result.state, cfg))
    assert point.constant_lr == pytest.approx(0.1)
