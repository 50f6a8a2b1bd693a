"""Training: pruned weights stay zero, schedules, batches, early stop, determinism."""

from __future__ import annotations

import pytest
import torch

from lth_suite.errors import DataError
from lth_suite.pruning.masks import Mask
from lth_suite.spec.sections import Training
from lth_suite.training import single as training
from lth_suite.training.config import TrainConfig
from lth_suite.training.data import BatchOrder, DataInfo, Splits
from lth_suite.training.result import TrainResult, snapshot
from lth_suite.training.single import train

INFO = DataInfo("t", (1, 4, 4), 3)


def splits(seed: int = 0, n: int = 96) -> Splits:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(16, 3, generator=generator)

    def part(size):
        x = torch.randn(size, *INFO.input_shape, generator=generator)
        return x, (x.flatten(1) @ w).argmax(1)

    return Splits(*part(n), *part(24), *part(24), INFO)


def config(n: int = 96, **overrides) -> TrainConfig:
    fields = {"optimizer": "adam", "lr": 0.01, "batch_size": 16, "duration": "30it",
              "eval_every": 10}
    fields.update(overrides)
    return TrainConfig.resolve(Training(**fields), n)


def build(registry, kind: str = "mlp", seed: int = 0):
    torch.manual_seed(seed)
    params = {"hidden": [24, 12]} if kind == "mlp" else {"width": 3, "hidden": [12]}
    return registry.build("architecture", kind, params, INFO)


def half_mask(model, seed: int = 0) -> Mask:
    generator = torch.Generator().manual_seed(seed)
    return Mask({k: torch.rand(v.shape, generator=generator) < 0.5
                 for k, v in Mask.dense(model).items()})


OPTIMIZERS = {
    "adam": {"optimizer": "adam", "lr": 0.01},
    "adam_wd": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01},
    "sgd_momentum": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
    "sgd_nesterov_wd": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                        "weight_decay": 5e-4},
    # decoupled weight decay shrinks every weight, gradient or not: the mask must hold it
    "adamw_wd": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
    "adamw_cosine_clipped": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1,
                             "clip_grad_norm": 0.5, "label_smoothing": 0.1,
                             "schedule": {"warmup": "5it", "decay": "cosine"}},
}


# --- pruned weights stay exactly zero ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_pruned_weights_stay_exactly_zero(registry, optimizer, kind):
    model = build(registry, kind)
    mask = half_mask(model)
    params = dict(model.named_parameters())
    with torch.no_grad():  # non-zero pruned weights: train must zero them itself
        for p in params.values():
            p.add_(0.5)
    start = snapshot(model)
    checked = []

    def check(done):
        for name, keep in mask.items():
            assert torch.all(params[name][~keep] == 0), (name, done)
            assert torch.all(params[name].grad[~keep] == 0), (name, done)
        checked.append(done)

    cfg = config(**OPTIMIZERS[optimizer])
    result = train(model, mask, splits(), cfg, data_seed=1, progress=check)
    assert checked == list(range(1, cfg.total + 1))
    for name, keep in mask.items():
        assert torch.all(result.state[name][~keep] == 0)
        # Kept weights did train.
        assert not torch.equal(result.state[name][keep], start[name][keep])


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_optimizer_state_from_a_dense_run_does_not_revive(registry, optimizer):
    """Dense training builds momentum; pruning then retraining must not leak it back."""
    model = build(registry)
    cfg = config(**OPTIMIZERS[optimizer])
    train(model, Mask.dense(model), splits(), cfg, data_seed=1)
    mask = half_mask(model, seed=5)
    result = train(model, mask, splits(), cfg, data_seed=1)
    for name, keep in mask.items():
        assert torch.all(result.state[name][~keep] == 0)
        assert torch.all(dict(model.named_parameters())[name][~keep] == 0)


def test_fresh_optimizer_per_training(registry, monkeypatch):
    made = []
    original = training.make_optimizer

    def spy(model, cfg):
        optimizer = original(model, cfg)
        assert not optimizer.has_state  # no momentum or Adam moments inherited
        made.append(optimizer)
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", spy)
    model = build(registry)
    cfg = config(**OPTIMIZERS["sgd_momentum"])
    first = train(model, Mask.dense(model), splits(), cfg, data_seed=1)
    mask = half_mask(model)
    continued = train(model, mask, splits(), cfg, data_seed=2)
    assert len(made) == 2 and made[0] is not made[1] and made[0].has_state

    # Behaviour, not just objects: the second training equals one on a fresh model.
    other = build(registry, seed=7)
    other.load_state_dict(first.state)
    fresh = train(other, mask, splits(), cfg, data_seed=2)
    assert all(torch.equal(continued.state[k], fresh.state[k]) for k in fresh.state)


def test_training_does_not_touch_biases_mask_or_unmasked_layers(registry):
    model = build(registry)
    mask = half_mask(model)
    before = {k: v.clone() for k, v in mask.items()}
    result = train(model, mask, splits(), config(), data_seed=0)
    assert all(torch.equal(mask[k], before[k]) for k in mask)
    biases = [k for k in result.state if k.endswith(".bias")]
    assert biases and all(result.state[k].abs().sum() > 0 for k in biases)


# --- learning-rate schedule -------------------------------------------------------------------

def test_lr_schedule_warmup_milestones_and_epochs():
    # 100 examples / 10 per batch = 10 iterations per epoch.
    cfg = TrainConfig.resolve(Training(lr=0.8, batch_size=10, duration="5ep", schedule={
        "warmup": "4it", "milestones": ["30it", "2ep"], "gamma": 0.5}), 100)
    assert cfg.per_epoch == 10 and cfg.total == 50 and cfg.warmup == 4
    assert cfg.milestones == (20, 30)
    expected = {0: 0.2, 1: 0.4, 2: 0.6, 3: 0.8, 4: 0.8, 19: 0.8, 20: 0.4, 29: 0.4, 30: 0.2,
                49: 0.2}
    for iteration, lr in expected.items():
        assert cfg.lr_at(iteration) == pytest.approx(lr), iteration


def test_epochs_use_the_training_split_size():
    cfg = TrainConfig.resolve(Training(batch_size=16, duration="2.5ep"), 100)  # 6 per epoch
    assert cfg.per_epoch == 6 and cfg.total == 15
    tiny = TrainConfig.resolve(Training(batch_size=16, duration="3ep"), 10)
    assert tiny.per_epoch == 1 and tiny.total == 3


def record_lrs(monkeypatch):
    """The LR of every step, read from the optimizer after the step."""
    lrs, made = [], []
    original = training.make_optimizer

    def spy(model, cfg):
        made.append(original(model, cfg))
        return made[-1]

    monkeypatch.setattr(training, "make_optimizer", spy)
    return lrs, lambda done: lrs.append(made[-1].lr)


def test_training_follows_the_schedule(registry, monkeypatch):
    lrs, progress = record_lrs(monkeypatch)
    cfg = config(lr=0.08, schedule={"warmup": "4it", "milestones": ["12it"], "gamma": 0.25})
    train(build(registry), Mask.dense(build(registry)), splits(), cfg, data_seed=0,
          progress=progress)
    assert lrs == pytest.approx([cfg.lr_at(i) for i in range(cfg.total)])
    assert lrs[0] == pytest.approx(0.02) and lrs[-1] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(0.08)


def test_start_iteration_and_constant_lr(registry, monkeypatch):
    lrs, progress = record_lrs(monkeypatch)
    cfg = config(schedule={"milestones": ["12it"]})
    model = build(registry)
    result = train(model, Mask.dense(model), splits(), cfg, data_seed=0, start_iteration=8,
                   progress=progress)
    assert lrs == pytest.approx([cfg.lr_at(i) for i in range(8, cfg.total)])
    assert [row["iteration"] for row in result.history] == [8, 10, 20, 30]
    lrs.clear()
    train(model, Mask.dense(model), splits(), cfg, data_seed=0, constant_lr=0.003,
          progress=progress)
    assert lrs == [0.003] * cfg.total


# --- history and early stopping --------------------------------------------------------------

def test_history_rows_and_early_stop(registry):
    model = build(registry)
    result = train(model, Mask.dense(model), splits(), config(eval_every=7), data_seed=0)
    assert [row["iteration"] for row in result.history] == [0, 7, 14, 21, 28, 30]
    assert "train_loss" not in result.history[0]
    assert all("train_loss" in row for row in result.history[1:])
    best = result.early_stop
    assert best["val_loss"] == min(row["val_loss"] for row in result.history)
    summary = result.summary()
    assert summary["early_stop_iteration"] == best["iteration"]
    assert summary["early_stop_test_accuracy"] == best["test_accuracy"]
    assert summary["final_test_accuracy"] == result.history[-1]["test_accuracy"]


def test_early_stop_picks_min_validation_loss_not_test_accuracy():
    rows = [
        {"iteration": 0.0, "val_loss": 2.0, "test_accuracy": 0.1, "test_loss": 2.0},
        {"iteration": 10.0, "val_loss": 0.5, "test_accuracy": 0.6, "test_loss": 0.9},
        {"iteration": 20.0, "val_loss": 0.7, "test_accuracy": 0.9, "test_loss": 0.4},
        {"iteration": 30.0, "val_loss": 0.5, "test_accuracy": 0.8, "test_loss": 0.5},
    ]
    result = TrainResult(state={}, history=rows)
    assert result.early_stop is rows[1]  # lowest val loss, first of the tie
    assert result.summary()["early_stop_test_accuracy"] == 0.6
    assert result.summary()["final_test_accuracy"] == 0.8


# --- batch order ----------------------------------------------------------------------------

def test_batch_order_is_reproducible_and_random_access():
    cpu = torch.device("cpu")
    sequential = BatchOrder(50, 8, seed=4, device=cpu)  # 6 batches per epoch, 2 dropped
    batches = [sequential.indices(i) for i in range(20)]
    jumpy = BatchOrder(50, 8, seed=4, device=cpu)
    for i in (13, 2, 19, 0, 7, 13, 6):
        assert torch.equal(jumpy.indices(i), batches[i]), i
    for epoch in range(3):  # each epoch is a permutation: no example twice in it
        seen = torch.cat(batches[epoch * 6: epoch * 6 + 6]).tolist()
        assert len(seen) == 48 and len(set(seen)) == 48 and max(seen) < 50
    assert all(len(b) == 8 for b in batches)
    assert not torch.equal(torch.cat(batches[:6]), torch.cat(batches[6:12]))  # reshuffled
    other = BatchOrder(50, 8, seed=5, device=cpu)
    assert not torch.equal(other.indices(0), batches[0])


def test_batch_larger_than_data_is_an_error():
    with pytest.raises(DataError, match="batch_size"):
        BatchOrder(10, 11, seed=0, device=torch.device("cpu"))


# --- determinism ----------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", "sgd_nesterov_wd"])
def test_same_seed_same_training(registry, optimizer):
    cfg = config(**OPTIMIZERS[optimizer])
    runs = []
    for _ in range(2):
        model = build(registry, "conv", seed=3)
        runs.append(train(model, half_mask(model), splits(), cfg, data_seed=11,
                          capture_at=frozenset({5})))
    a, b = runs
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert a.history == b.history
    assert all(torch.equal(a.captured[5][k], b.captured[5][k]) for k in a.state)
    model = build(registry, "conv", seed=3)
    other = train(model, half_mask(model), splits(), cfg, data_seed=12)
    assert not all(torch.equal(a.state[k], other.state[k]) for k in a.state)


def test_capture_at_matches_a_run_stopped_there(registry):
    model = build(registry)
    init = snapshot(model)
    full = train(model, Mask.dense(model), splits(), config(), data_seed=2,
                 capture_at=frozenset({0, 13, 30}))
    assert set(full.captured) == {0, 13, 30}
    assert all(torch.equal(full.captured[0][k], init[k]) for k in init)
    assert all(torch.equal(full.captured[30][k], full.state[k]) for k in init)
    short = build(registry, seed=9)
    short.load_state_dict(init)
    stopped = train(short, Mask.dense(short), splits(), config(duration="13it"), data_seed=2)
    assert all(torch.equal(full.captured[13][k], stopped.state[k]) for k in init)



# --- randomness inside the model --------------------------------------------------------------

def dropout_model(registry, seed: int = 0):
    torch.manual_seed(seed)
    return registry.build("architecture", "mlp", {"hidden": [32, 16], "dropout": 0.5}, INFO)


def test_dropout_training_is_reproducible_and_leaves_global_rng_alone(registry):
    cfg = config()
    runs = [train(dropout_model(registry), Mask.dense(dropout_model(registry)), splits(), cfg,
                  data_seed=4) for _ in range(2)]
    model = dropout_model(registry)
    torch.rand(3)  # whatever the caller draws before training must not matter
    runs.append(train(model, Mask.dense(model), splits(), cfg, data_seed=4))
    for other in runs[1:]:
        assert all(torch.equal(runs[0].state[k], other.state[k]) for k in other.state)
        assert runs[0].history == other.history
    model, data = dropout_model(registry), splits()
    before = torch.get_rng_state()
    train(model, Mask.dense(model), data, cfg, data_seed=4)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG state is restored


def test_dropout_training_resumes_exactly_at_any_iteration(registry):
    """Plain SGD has no optimizer state, so resuming at k must equal the full run."""
    cfg = config(optimizer="sgd", lr=0.1)
    model = dropout_model(registry)
    full = train(model, Mask.dense(model), splits(), cfg, data_seed=4,
                 capture_at=frozenset({17}))
    resumed = dropout_model(registry, seed=5)
    resumed.load_state_dict(full.captured[17])
    again = train(resumed, Mask.dense(resumed), splits(), cfg, data_seed=4, start_iteration=17)
    assert all(torch.equal(full.state[k], again.state[k]) for k in full.state)
