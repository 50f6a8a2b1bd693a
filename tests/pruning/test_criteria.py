"""Every registered criterion, through the same invariants the runner relies on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.pruning.targets import PruneRequest, random_mask_like, target_groups
from lth_suite.spec.sections import Pruning
from lth_suite.training.data import DataInfo, Splits

CRITERIA = load_plugins(installed=False).registry.names("criterion")
INFO = DataInfo("t", (1, 8, 8), 4)


def small_model(registry, seed: int = 0) -> nn.Module:
    """Conv, linear and output layers: every kind a criterion must handle."""
    torch.manual_seed(seed)
    return registry.build("architecture", "conv",
                          {"depth": 2, "width": 3, "hidden": [24, 12]}, INFO)


def small_data(seed: int = 0) -> Splits:
    generator = torch.Generator().manual_seed(seed)

    def part(n):
        return (torch.randn(n, *INFO.input_shape, generator=generator),
                torch.randint(0, INFO.num_classes, (n,), generator=generator))

    return Splits(*part(32), *part(16), *part(16), INFO)


def request(model, mask, rules, level, seed=0, layers=None):
    layers = layers or prunable_layers(model)
    groups = target_groups(layers, mask, rules, level)
    return PruneRequest(model=model, mask=mask, layers=layers, groups=groups, level=level,
                        generator=torch.Generator().manual_seed(seed),
                        init_state={k: v.clone() for k, v in model.state_dict().items()},
                        data=small_data())


def perturb(model, mask, seed):
    """Stand-in for retraining: move the weights, keep the pruned ones at zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    mask.apply_(model)


@pytest.fixture(params=CRITERIA)
def criterion(request, registry):
    return request.param, registry.build("criterion", request.param, {})


# --- every criterion ------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_iterative_levels_shrink_and_hit_every_target(criterion, registry, scope):
    name, prune = criterion
    model = small_model(registry)
    layers = prunable_layers(model)
    rules = Pruning(scope=scope, fraction={"conv": 0.3, "linear": 0.2, "output": 0.1})
    fractions = {"conv": 0.3, "linear": 0.2, "output": 0.1}
    mask = Mask.dense(model, layers)
    for level in range(1, 5):
        req = request(model, mask, rules, level, seed=level, layers=layers)
        before_mask = {k: v.clone() for k, v in mask.items()}
        before_state = {k: v.clone() for k, v in model.state_dict().items()}
        new = prune(req)
        # The request is read-only.
        assert all(torch.equal(mask[k], before_mask[k]) for k in mask)
        assert all(torch.equal(v, before_state[k]) for k, v in model.state_dict().items())
        assert set(new) == set(mask)
        assert new.is_subset_of(mask), f"{name} revived weights at level {level}"
        kept, previous = new.kept(), mask.kept()
        for names, keep in req.groups:
            assert sum(kept[n] for n in names) == keep
        if scope == "global":
            for kind, fraction in fractions.items():
                names = [layer.name for layer in layers if layer.kind == kind]
                target = sum(previous[n] for n in names) * (1 - fraction)
                assert abs(sum(kept[n] for n in names) - target) <= 0.5 + 1e-9, kind
        else:
            for layer in layers:
                target = previous[layer.name] * (1 - fractions[layer.kind])
                assert abs(kept[layer.name] - target) <= 0.5 + 1e-9, layer.name
        mask = new
        perturb(model, mask, seed=100 + level)
    assert mask.density() < 0.8 ** 3


def test_excluded_layers_and_null_fractions_untouched(criterion, registry):
    _, prune = criterion
    model = small_model(registry)
    layers = prunable_layers(model)
    linear = [layer.name for layer in layers if layer.kind == "linear"]
    rules = Pruning(fraction={"conv": 0.5, "linear": 0.5, "output": None},
                    exclude=[linear[0].rsplit(".", 1)[0]])
    # Start from a partly pruned mask so "untouched" means "equal", not just "dense".
    start = Mask({k: torch.rand(v.shape, generator=torch.Generator().manual_seed(1)) < 0.8
                  for k, v in Mask.dense(model, layers).items()})
    for scope in ("layerwise", "global"):
        rules = rules.model_copy(update={"scope": scope})
        new = prune(request(model, start, rules, 1, layers=layers))
        output = [layer.name for layer in layers if layer.kind == "output"]
        for untouched in [linear[0], *output]:
            assert torch.equal(new[untouched], start[untouched]), (scope, untouched)
        for layer in layers:
            if layer.name not in (linear[0], *output):
                assert new.kept()[layer.name] < start.kept()[layer.name]


def test_output_layer_pruned_at_its_own_rate(criterion, registry):
    _, prune = criterion
    model = small_model(registry)
    layers = prunable_layers(model)
    rules = Pruning(fraction={"conv": 0.5, "linear": 0.5, "output": 0.25})
    new = prune(request(model, Mask.dense(model, layers), rules, 1, layers=layers))
    for layer in layers:
        expected = 0.75 if layer.kind == "output" else 0.5
        assert abs(new.kept()[layer.name] - expected * layer.numel) <= 0.5, layer.name


def test_oneshot_targets_from_a_dense_mask(criterion, registry):
    _, prune = criterion
    model = small_model(registry)
    layers = prunable_layers(model)
    rules = Pruning(strategy="oneshot", fraction={"conv": 0.2, "linear": 0.2, "output": 0.1})
    dense = Mask.dense(model, layers)
    for level in (1, 2, 4):
        new = prune(request(model, dense, rules, level, layers=layers))
        for layer in layers:
            fraction = 0.1 if layer.kind == "output" else 0.2
            assert new.kept()[layer.name] == round(layer.numel * (1 - fraction) ** level)


def test_same_generator_same_mask(criterion, registry):
    _, prune = criterion
    model = small_model(registry)
    rules = Pruning()
    first = prune(request(model, Mask.dense(model), rules, 1, seed=7))
    second = prune(request(model, Mask.dense(model), rules, 1, seed=7))
    assert first.equals(second)


# --- target groups --------------------------------------------------------------------------

def test_target_groups_layerwise_global_and_oneshot(registry):
    model = small_model(registry)
    layers = prunable_layers(model)
    mask = Mask({k: torch.rand(v.shape, generator=torch.Generator().manual_seed(2)) < 0.5
                 for k, v in Mask.dense(model, layers).items()})
    kept = mask.kept()
    layerwise = target_groups(layers, mask, Pruning(), 3)
    assert [names for names, _ in layerwise] == [[layer.name] for layer in layers]
    for (names,), keep in ((n, k) for n, k in layerwise):
        fraction = 0.1 if names == layers[-1].name else 0.2
        assert keep == round(kept[names] * (1 - fraction))
    pooled = dict((tuple(n), k) for n, k in target_groups(layers, mask, Pruning(scope="global"), 3))
    for kind, fraction in (("conv", 0.2), ("linear", 0.2), ("output", 0.1)):
        names = tuple(layer.name for layer in layers if layer.kind == kind)
        assert pooled[names] == round(sum(kept[n] for n in names) * (1 - fraction))
    oneshot = target_groups(layers, mask, Pruning(strategy="oneshot"), 3)
    for (names,), keep in ((n, k) for n, k in oneshot):
        fraction = 0.1 if names == layers[-1].name else 0.2
        numel = next(layer.numel for layer in layers if layer.name == names)
        assert keep == round(numel * (1 - fraction) ** 3)


# --- magnitude ------------------------------------------------------------------------------

def two_layer_mlp(registry, scale_first: float) -> nn.Module:
    torch.manual_seed(0)
    model = registry.build("architecture", "mlp", {"hidden": [20, 20]}, DataInfo("t", (12,), 5))
    with torch.no_grad():
        model[1].weight.mul_(scale_first)
    return model


def test_magnitude_keeps_largest_abs_including_negative_weights(registry):
    prune = registry.build("criterion", "magnitude", {})
    model = two_layer_mlp(registry, 1.0)
    layers = prunable_layers(model)
    with torch.no_grad():
        weight = model[1].weight
        # Distinct magnitudes, signs alternating, the biggest ones negative.
        values = torch.arange(1, weight.numel() + 1, dtype=torch.float32)
        signs = torch.where(torch.arange(weight.numel()) % 2 == 0, -1.0, 1.0)
        weight.copy_((values * signs)[torch.randperm(weight.numel())].reshape(weight.shape))
    mask = Mask.dense(model, layers)
    for level in range(1, 4):
        new = prune(request(model, mask, Pruning(fraction={"linear": 0.5}), level, layers=layers))
        for layer in layers:
            w = dict(model.named_parameters())[layer.name].detach().abs()
            kept, pruned = w[new[layer.name]], w[mask[layer.name] & ~new[layer.name]]
            assert kept.min() >= pruned.max(), layer.name
        w = model[1].weight.detach()
        keep = new["fc1.weight"]
        assert (w[keep] < 0).sum() > 0 and (w[keep] > 0).sum() > 0
        assert bool(keep.reshape(-1)[w.reshape(-1).argmin()])  # the most negative weight
        assert not bool(keep.reshape(-1)[w.abs().reshape(-1).argmin()])  # the smallest |w|
        mask = new
        mask.apply_(model)


def test_magnitude_global_uses_one_threshold_layerwise_equal_densities(registry):
    prune = registry.build("criterion", "magnitude", {})
    model = two_layer_mlp(registry, scale_first=10.0)  # first layer's weights 10x larger
    layers = prunable_layers(model)
    linear = [layer.name for layer in layers if layer.kind == "linear"]
    params = dict(model.named_parameters())
    dense = Mask.dense(model, layers)
    rules = Pruning(fraction={"linear": 0.5, "output": None})

    glob = prune(request(model, dense, rules.model_copy(update={"scope": "global"}), 1,
                         layers=layers))
    kept_scores = torch.cat([params[n].detach().abs()[glob[n]] for n in linear])
    pruned_scores = torch.cat([params[n].detach().abs()[~glob[n]] for n in linear])
    assert kept_scores.min() >= pruned_scores.max()
    total = sum(dense.kept()[n] for n in linear)
    assert sum(glob.kept()[n] for n in linear) == round(total * 0.5)
    densities = glob.layer_density()
    # The larger-scaled layer keeps far more than half, the other far less.
    assert densities[linear[0]] > 0.8 and densities[linear[1]] < 0.35

    local = prune(request(model, dense, rules, 1, layers=layers))
    densities = local.layer_density()
    for name in linear:
        numel = params[name].numel()
        assert abs(local.kept()[name] - 0.5 * numel) <= 0.5
    assert abs(densities[linear[0]] - densities[linear[1]]) < 0.05


# --- random ---------------------------------------------------------------------------------

def test_random_mask_like_keeps_per_layer_counts(registry):
    model = small_model(registry)
    ticket = Mask({k: torch.rand(v.shape, generator=torch.Generator().manual_seed(4)) < 0.3
                   for k, v in Mask.dense(model).items()})
    first = random_mask_like(ticket, torch.Generator().manual_seed(1))
    again = random_mask_like(ticket, torch.Generator().manual_seed(1))
    other = random_mask_like(ticket, torch.Generator().manual_seed(2))
    assert first.kept() == ticket.kept()
    assert first.equals(again)
    assert not first.equals(other)
    assert not first.equals(ticket)
    assert all(first[k].shape == ticket[k].shape for k in ticket)


def test_random_criterion_ignores_weights_and_uses_the_generator(registry):
    prune = registry.build("criterion", "random", {})
    model = small_model(registry)
    rules = Pruning()
    a = prune(request(model, Mask.dense(model), rules, 1, seed=1))
    b = prune(request(model, Mask.dense(model), rules, 1, seed=2))
    assert a.kept() == b.kept()
    assert not a.equals(b)
