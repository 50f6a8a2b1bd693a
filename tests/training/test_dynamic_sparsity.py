"""Dynamic sparse training: invariants over every registered method, determinism, the
level-0 ticket and its controls in an experiment, and RigL's accuracy on digits."""

from __future__ import annotations

import pytest
import torch

from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning.allocation import shapes_of
from lth_suite.pruning.masks import Mask, keep_top, prunable_layers
from lth_suite.spec.loading import build_spec
from lth_suite.spec.sections import Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.data import DatasetParams, split_validation
from lth_suite.training.dynamic import UpdaterContext
from lth_suite.training.loop import Step
from lth_suite.training.single import train

REGISTRY = load_plugins(installed=False).registry
METHODS = REGISTRY.names("dynamic")


@pytest.fixture(scope="module")
def digits():
    raw = REGISTRY.build("dataset", "digits", {"validation": 0.1}, 0)
    return split_validation(raw, DatasetParams(validation=0.1))


def config_for(iterations: int) -> TrainConfig:
    return TrainConfig.resolve(Training(lr=3e-3, duration=f"{iterations}it", eval_every=iterations),
                               1000)


def start(density: float, allocation: str = "erk", seed: int = 0):
    torch.manual_seed(seed)
    model = REGISTRY.build("architecture", "mlp", {"hidden": [64, 32]}, digits_info())
    dense = Mask.dense(model)
    names = [layer.name for layer in prunable_layers(model)]
    counts = REGISTRY.build("allocation", allocation, {})(shapes_of(dense, names), density)
    scores = {n: torch.rand(k.shape, generator=torch.Generator().manual_seed(1))
              for n, k in dense.items()}
    return model, keep_top(scores, dense, [([n], c) for n, c in zip(names, counts)])


def digits_info():
    return REGISTRY.build("dataset", "digits", {"validation": 0.1}, 0).info


class Watch:
    """Wraps an updater: checks every invariant right after each of its updates."""

    def __init__(self, updater, counts):
        self.updater, self.counts, self.updates = updater, counts, 0
        self.before: dict[str, torch.Tensor] = {}

    def __call__(self, step: Step) -> None:
        layers = step.stepper.sparse_layers()
        before = {name: keep.clone() for name, _, keep in layers}
        self.updater(step)
        changed = False
        for name, weight, keep in layers:
            assert set(keep.unique().tolist()) <= {0.0, 1.0}
            assert int(keep.sum()) == self.counts[name], "density must stay exactly constant"
            assert torch.all(weight[keep == 0] == 0), "pruned weights are zero"
            grown = (keep == 1) & (before[name] == 0)
            if grown.any():
                changed = True
                assert torch.all(weight[grown] == 0), "regrown weights start at zero"
                optimizer = step.stepper.optimizer
                index = next(i for i, p in enumerate(optimizer.params) if p is weight)
                assert torch.all(optimizer.exp_avgs[index][grown] == 0)
                assert torch.all(optimizer.exp_avg_sqs[index][grown] == 0)
        self.updates += changed

    def mask(self) -> Mask:
        return self.updater.mask()


def train_dst(method: str, digits, iterations: int = 60, density: float = 0.2,
              params: dict | None = None):
    model, mask = start(density)
    config = config_for(iterations)
    updater = REGISTRY.build("dynamic", method, {"every": 10, **(params or {})}).updater(
        UpdaterContext(mask, digits, config, data_seed=3))
    watch = Watch(updater, mask.kept())
    result = train(model, mask, digits, config, data_seed=3, callbacks=[watch])
    return mask, watch, result


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_density_masks_valid_and_regrows_at_zero(method, digits):
    mask, watch, result = train_dst(method, digits)
    final = watch.mask()
    assert watch.updates >= 3  # it moved weights at several updates
    assert final.kept() == mask.kept() and not final.equals(mask)
    for name, keep in final.items():
        assert torch.all(result.state[name][~keep] == 0)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_masks_and_weights(method, digits):
    first, second = (train_dst(method, digits, iterations=30) for _ in range(2))
    assert first[1].mask().equals(second[1].mask())
    for name, value in first[2].state.items():
        assert torch.equal(value, second[2].state[name]), name


def test_no_update_after_the_end_fraction(digits):
    mask, watch, _ = train_dst("rigl", digits, iterations=60, params={"end": 0.1})
    assert watch.updates == 0 and watch.mask().equals(mask)


def test_rigl_at_80_percent_density_within_two_points_of_dense(digits):
    """A short real training (300 iterations of LeNet-300-100 on digits)."""
    config = TrainConfig.resolve(Training(lr=1.2e-3, duration="300it", eval_every=300),
                                 len(digits.y_train))
    accuracy = {}
    for name, density in (("dense", 1.0), ("rigl", 0.8)):
        torch.manual_seed(0)
        model = REGISTRY.build("architecture", "mlp", {"hidden": [300, 100]}, digits.info)
        dense = Mask.dense(model)
        mask, callbacks = dense, []
        if density < 1:
            names = list(dense)
            counts = REGISTRY.build("allocation", "erk", {})(shapes_of(dense, names), density)
            scores = {n: torch.rand(k.shape, generator=torch.Generator().manual_seed(1))
                      for n, k in dense.items()}
            mask = keep_top(scores, dense, [([n], c) for n, c in zip(names, counts)])
            callbacks = [REGISTRY.build("dynamic", name, {}).updater(
                UpdaterContext(mask, digits, config, data_seed=0))]
        result = train(model, mask, digits, config, data_seed=0, callbacks=callbacks)
        accuracy[name] = result.history[-1]["test_accuracy"]
    assert accuracy["dense"] > 0.9
    assert accuracy["rigl"] >= accuracy["dense"] - 0.02, accuracy


@pytest.mark.parametrize("population", ["off", "on"])
def test_experiment_level0_ticket_moves_and_its_controls_share_its_densities(
        tiny, registry, tracking_uri, population):
    tiny["sparsity"] = {"dynamic": {"name": "rigl", "every": 5}, "density": 0.3,
                        "allocation": "erk"}
    tiny["pruning"]["levels"] = 1
    tiny["experiment"]["replicates"] = 2 if population == "on" else 1
    tiny["training"]["population"] = population
    finished = run_experiment(build_spec(tiny, registry), load_plugins(installed=False),
                              tracking_uri)
    level0 = {b.branch: b.mask for b in finished.levels[0].branches if b.replicate == 0}
    assert set(level0) == {"ticket", "reinit", "random_prune"}
    assert level0["ticket"].density() == pytest.approx(0.3, abs=1e-3)
    assert level0["reinit"].equals(level0["ticket"])
    assert level0["random_prune"].kept() == level0["ticket"].kept()
    assert not level0["random_prune"].equals(level0["ticket"])
    ticket1 = finished.levels[1].branches[0].mask
    assert ticket1.is_subset_of(level0["ticket"]) and ticket1.density() < 0.3
    if population == "on":  # each replicate moved its own mask, from its own start
        other = next(b.mask for b in finished.levels[0].branches
                     if b.replicate == 1 and b.branch == "ticket")
        assert other.kept() == level0["ticket"].kept() and not other.equals(level0["ticket"])


@pytest.mark.parametrize("method", METHODS)
def test_population_members_move_their_own_masks_exactly(method, digits):
    from lth_suite.training.population import Member, train_population

    config = config_for(40)
    members, updaters = [], []
    for seed in (0, 1):
        model, mask = start(0.25, seed=seed)
        members.append(Member({k: v.clone() for k, v in model.state_dict().items()}, mask, seed))
        updaters.append(Watch(REGISTRY.build("dynamic", method, {"every": 10}).updater(
            UpdaterContext(mask, digits, config, data_seed=seed, member=len(updaters))),
            mask.kept()))
    results = train_population(model, members, digits, config,
                               callbacks=[PopulationWatch(updaters)])
    for member, watch in zip(members, updaters):
        final = watch.updater.mask()
        assert final.kept() == member.mask.kept() and not final.equals(member.mask)
    for result, watch in zip(results, updaters):
        for name, keep in watch.updater.mask().items():
            assert torch.all(result.state[name][~keep] == 0)


class PopulationWatch:
    """Each member's updater, with the density and zero-weight checks of one member."""

    def __init__(self, watches):
        self.watches = watches

    def __call__(self, step: Step) -> None:
        for member, watch in enumerate(self.watches):
            before = {n: k.clone() for n, _, k in step.stepper.sparse_layers(member)}
            watch.updater(step)
            for name, weight, keep in step.stepper.sparse_layers(member):
                assert int(keep.sum()) == watch.counts[name]
                assert torch.all(weight[keep == 0] == 0)
                assert torch.all(weight[(keep == 1) & (before[name] == 0)] == 0)


def test_workers_move_a_level0_ticket_exactly_as_in_process(tiny, registry, tmp_path):
    tiny["sparsity"] = {"dynamic": {"name": "rigl", "every": 5}, "density": 0.3}
    tiny["pruning"]["levels"] = 1
    tiny["experiment"]["replicates"] = 2
    plugins = load_plugins(installed=False)
    runs = {}
    for workers in (1, 2):
        tiny["launcher"] = {"name": "local", "workers": workers}
        runs[workers] = run_experiment(build_spec(tiny, registry), plugins,
                                       f"sqlite:///{tmp_path / f'{workers}.db'}")
    for one, two in zip(runs[1].levels, runs[2].levels, strict=True):
        for a, b in zip(one.branches, two.branches, strict=True):
            assert (a.replicate, a.branch) == (b.replicate, b.branch)
            assert a.mask.equals(b.mask) and a.result.history == b.result.history
    moved = runs[2].levels[0].branches[0]
    assert moved.branch == "ticket" and moved.mask.density() == pytest.approx(0.3, abs=1e-3)
