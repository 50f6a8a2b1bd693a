"""snip, grasp and synflow: lth-suite's criterion invariants, and the papers' scores."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.func import functional_call

from lth_suite.api import DataInfo, Mask, PruneRequest, Splits, keep_top, prunable_layers
from lth_suite.pruning.targets import target_groups  # test helpers, not plugin API
from lth_suite.spec.sections import Pruning
from lth_suite_pai.criteria import synflow_schedule

CRITERIA = ("snip", "grasp", "synflow")
INFO = DataInfo("t", (1, 8, 8), 4)


def conv_model(registry, seed: int = 0) -> nn.Module:
    """Conv, linear and output layers: every kind a criterion must handle."""
    torch.manual_seed(seed)
    return registry.build("architecture", "conv", {"depth": 2, "width": 3, "hidden": [24, 12]},
                          INFO)


def mlp_model(registry, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return registry.build("architecture", "mlp", {"hidden": [16, 8]}, INFO)


def small_data(seed: int = 0) -> Splits:
    generator = torch.Generator().manual_seed(seed)

    def part(n):
        return (torch.randn(n, *INFO.input_shape, generator=generator),
                torch.randint(0, INFO.num_classes, (n,), generator=generator))

    return Splits(*part(64), *part(16), *part(16), INFO)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_request(model, mask, rules, level, *, init_state=None, data="default", seed=0):
    layers = prunable_layers(model)
    return PruneRequest(model=model, mask=mask, layers=layers,
                        groups=target_groups(layers, mask, rules, level), level=level,
                        generator=torch.Generator().manual_seed(seed),
                        init_state=init_state if init_state is not None else state_of(model),
                        data=small_data() if data == "default" else data)


def perturb(model, mask, seed):
    """Stand-in for training: move the weights, keep the pruned ones at zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    mask.apply_(model)


def group_counts(mask: Mask, groups) -> list[int]:
    kept = mask.kept()
    return [sum(kept[n] for n in names) for names, _ in groups]


# --- the invariants the runner relies on ---------------------------------------------------

@pytest.mark.parametrize("at", ["current", "init"])
@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("name", CRITERIA)
def test_levels_hit_exact_targets_only_shrink_and_leave_the_request_alone(
        registry, name, scope, at):
    prune = registry.build("criterion", name, {"at": at, **(
        {"iterations": 10} if name == "synflow" else {"batch_size": 16, "batches": 2})})
    model = conv_model(registry)
    init_state = state_of(model)
    rules = Pruning(scope=scope, fraction={"conv": 0.3, "linear": 0.4, "output": 0.1})
    mask = Mask.dense(model)
    for level in range(1, 4):
        perturb(model, mask, seed=level)
        request = make_request(model, mask, rules, level, init_state=init_state, seed=level)
        before = (state_of(model), {k: v.clone() for k, v in mask.items()},
                  {k: v.clone() for k, v in init_state.items()}, request.data.x_train.clone())
        new = prune(request)
        assert all(torch.equal(v, before[0][k]) for k, v in model.state_dict().items())
        assert all(torch.equal(mask[k], before[1][k]) for k in mask)
        assert all(torch.equal(init_state[k], before[2][k]) for k in init_state)
        assert torch.equal(request.data.x_train, before[3])
        assert all(not p.requires_grad or p.grad is None for p in model.parameters())
        assert set(new) == set(mask) and new.is_subset_of(mask)
        assert group_counts(new, request.groups) == [keep for _, keep in request.groups]
        assert new.density() < mask.density()
        mask = new


@pytest.mark.parametrize("name", CRITERIA)
def test_oneshot_at_init_from_the_dense_network(registry, name):
    model = conv_model(registry)
    rules = Pruning(strategy="oneshot", fraction={"conv": 0.5, "linear": 0.5, "output": 0.2})
    dense = Mask.dense(model)
    prune = registry.build("criterion", name, {"at": "init", **(
        {"iterations": 20} if name == "synflow" else {})})
    for level in (1, 3):
        request = make_request(model, dense, rules, level)
        new = prune(request)
        assert group_counts(new, request.groups) == [keep for _, keep in request.groups]


@pytest.mark.parametrize("name", CRITERIA)
def test_deterministic(registry, name):
    model = conv_model(registry)
    rules = Pruning(fraction={"conv": 0.5, "linear": 0.5, "output": 0.2})
    masks = [registry.build("criterion", name, {})(make_request(model, Mask.dense(model),
                                                                 rules, 2, seed=7))
             for _ in range(2)]
    assert masks[0].equals(masks[1])


@pytest.mark.parametrize("name", CRITERIA)
def test_at_init_scores_the_init_state(registry, name):
    """``at: init`` on trained weights == ``at: current`` on the initial weights."""
    model = conv_model(registry)
    init_state = state_of(model)
    rules = Pruning(fraction={"conv": 0.5, "linear": 0.5, "output": 0.2})
    dense = Mask.dense(model)
    at_init = registry.build("criterion", name, {"at": "init"})
    current = registry.build("criterion", name, {"at": "current"})
    expected = current(make_request(model, dense, rules, 1, seed=3))
    perturb(model, dense, seed=11)  # "training" moved the weights far from init
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(-3.0)
    assert at_init(make_request(model, dense, rules, 1, init_state=init_state,
                                seed=3)).equals(expected)
    assert not current(make_request(model, dense, rules, 1, seed=3)).equals(expected)


@pytest.mark.parametrize("name", CRITERIA)
def test_at_init_needs_init_state(registry, name):
    model = conv_model(registry)
    request = make_request(model, Mask.dense(model), Pruning(), 1)
    request.init_state = {}
    with pytest.raises(ValueError, match="init_state"):
        registry.build("criterion", name, {"at": "init"})(request)


def test_synflow_is_data_free(registry):
    model = mlp_model(registry)
    rules = Pruning(scope="global", fraction={"linear": 0.8, "output": 0.5})
    synflow = registry.build("criterion", "synflow", {})
    without = synflow(make_request(model, Mask.dense(model), rules, 2, data=None))
    with_data = synflow(make_request(model, Mask.dense(model), rules, 2))
    assert without.equals(with_data)  # ones of shape (64,) or (1, 8, 8): the same flow


def test_synflow_without_data_needs_a_leading_linear_layer(registry):
    model = conv_model(registry)
    synflow = registry.build("criterion", "synflow", {})
    with pytest.raises(ValueError, match="input shape"):
        synflow(make_request(model, Mask.dense(model), Pruning(), 1, data=None))


@pytest.mark.parametrize("name", ["snip", "grasp"])
def test_data_driven_criteria_need_data(registry, name):
    model = mlp_model(registry)
    with pytest.raises(ValueError, match=f"{name} needs training data"):
        registry.build("criterion", name, {})(make_request(model, Mask.dense(model), Pruning(), 1,
                                                           data=None))


def test_params_are_strict(registry):
    for name, typo in (("snip", "batchs"), ("grasp", "temprature"), ("synflow", "iteration")):
        with pytest.raises(ValidationError):
            registry.build("criterion", name, {typo: 1})
    with pytest.raises(ValidationError):
        registry.build("criterion", "synflow", {"at": "end"})
    assert registry.get("criterion", "synflow").params_model().iterations == 100


# --- the papers' scores, computed independently on a tiny network -------------------------

def tiny_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 4))


def tiny_request(model, seed=0) -> PruneRequest:
    rules = Pruning(fraction={"linear": 0.5, "output": 0.5})
    return make_request(model, Mask.dense(model), rules, 1, seed=seed)


def loss_of(model, request, batch_size, temperature=1.0):
    """The loss as a function of the prunable weights, on the batches the criteria draw."""
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(request.data.y_train), generator=generator)[:batch_size]
    x, y = request.data.x_train[order], request.data.y_train[order]
    names = list(request.mask)
    others = {k: v.detach() for k, v in model.named_parameters() if k not in names}
    shapes = [model.get_parameter(n).shape for n in names]

    def loss(flat):
        params, offset = dict(others), 0
        for name, shape in zip(names, shapes):
            params[name] = flat[offset: offset + shape.numel()].reshape(shape)
            offset += shape.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (x,)) / temperature, y)

    flat = torch.cat([model.get_parameter(n).detach().reshape(-1) for n in names])
    return loss, flat, names, shapes


def unflatten(flat, names, shapes):
    out, offset = {}, 0
    for name, shape in zip(names, shapes):
        out[name] = flat[offset: offset + shape.numel()].reshape(shape)
        offset += shape.numel()
    return out


def test_snip_keeps_the_largest_gradient_times_weight(registry):
    model = tiny_net()
    request = tiny_request(model)
    loss, flat, names, shapes = loss_of(model, request, batch_size=32)
    g = torch.func.grad(loss)(flat)
    expected = keep_top(unflatten((g * flat).abs(), names, shapes), request.mask, request.groups)
    got = registry.build("criterion", "snip", {"batch_size": 32})(request)
    assert got.equals(expected)


def test_grasp_keeps_the_largest_w_hg_which_the_paper_calls_removing_the_largest_s(registry):
    model = tiny_net()
    request = tiny_request(model)
    loss, flat, names, shapes = loss_of(model, request, batch_size=32, temperature=200.0)
    g = torch.func.grad(loss)(flat)
    hg = torch.func.jvp(torch.func.grad(loss), (flat,), (g,))[1]  # forward-over-reverse H g
    s = -flat * hg  # the paper's S(-w) = -w * Hg; GraSP removes the largest
    expected = keep_top(unflatten(-s, names, shapes), request.mask, request.groups)
    got = registry.build("criterion", "grasp", {"batch_size": 32})(request)
    assert got.equals(expected)
    opposite = keep_top(unflatten(s, names, shapes), request.mask, request.groups)
    assert not got.equals(opposite)


def test_synflow_single_round_is_the_synaptic_flow_score(registry):
    model = tiny_net()
    request = tiny_request(model)
    w1, b1 = model[1].weight.detach().double().abs(), model[1].bias.detach().double().abs()
    w2 = model[3].weight.detach().double().abs()
    # R = 1' |W2| relu(|W1| 1 + |b1|) + ...: all positive, so dR/dW1[i, j] = colsum(|W2|)[i]
    # and dR/dW2[k, i] = (|W1| 1 + |b1|)[i]
    scores = {"1.weight": w1 * w2.sum(0)[:, None], "3.weight": w2 * (w1.sum(1) + b1)[None, :]}
    expected = keep_top(scores, request.mask, request.groups)
    got = registry.build("criterion", "synflow", {"iterations": 1})(request)
    assert got.equals(expected)


def test_synflow_schedule_is_exponential_and_ends_exactly(registry):
    model = conv_model(registry)
    mask = Mask.dense(model)
    groups = [(["conv1.weight"], 3), (["fc1.weight", "fc2.weight"], 100), (["out.weight"], 48)]
    steps = synflow_schedule(mask, groups, 10)
    assert len(steps) == 10 and steps[-1] == groups
    start = mask.kept()
    for g, (names, keep) in enumerate(groups):
        counts = [step[g][1] for step in steps]
        assert counts == sorted(counts, reverse=True) and counts[-1] == keep
        total = sum(start[n] for n in names)
        if keep < total:
            assert counts[0] < total  # pruning starts at the first round
            middle = round(total * (keep / total) ** 0.5)
            assert counts[4] == max(keep, middle)
