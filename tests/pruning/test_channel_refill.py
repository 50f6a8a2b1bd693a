"""``channel_refill``: whole conv filters, exact targets, masks that only shrink.

The registry-driven invariants (targets per group, read-only requests, exclusions,
determinism) run for it in tests/pruning/test_criteria.py; these pin what makes it structured.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.pruning.targets import PruneRequest, target_groups
from lth_suite.spec.sections import Pruning
from lth_suite.training.data import DataInfo


def small_model(registry) -> nn.Module:
    """Conv-2 with few channels: conv, linear and output layers."""
    torch.manual_seed(0)
    return registry.build("architecture", "conv", {"depth": 2, "width": 6, "hidden": [24, 12]},
                          DataInfo("t", (1, 8, 8), 4))


def request(model, mask, rules, level, layers) -> PruneRequest:
    return PruneRequest(model, mask, layers, target_groups(layers, mask, rules, level), level,
                        torch.Generator().manual_seed(level))


def perturb(model, mask, seed):
    """Stand-in for retraining: move the weights, keep the pruned ones at zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    mask.apply_(model)


class OneConv(nn.Module):
    """A conv with four 1x2x2 filters whose weights the tests set by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 2, bias=False)
        self.out = nn.Linear(4, 2)

    def forward(self, x):  # noqa: D102 - nn.Module contract
        return self.out(self.conv(x).flatten(1))


def one_conv() -> nn.Module:
    model = OneConv()
    with torch.no_grad():
        model.conv.weight.copy_(torch.tensor([
            [10, 9, 0.1, 0.2],  # filter 0: two large weights, larger |w| sum than filter 3
            [8, 7, -6, 0.05],  # filter 1: three large
            [5, 0.3, 0.4, 0.5],  # filter 2: one large
            [0.6, -0.7, 0.8, 0.9],  # filter 3: none large
        ]).reshape(4, 1, 2, 2))
    return model


def refill(registry, model, mask, fraction, scope="layerwise"):
    layers = prunable_layers(model)
    rules = Pruning(scope=scope, fraction={"conv": fraction, "linear": None, "output": None})
    req = PruneRequest(model, mask, layers, target_groups(layers, mask, rules, 1), 1,
                       torch.Generator().manual_seed(0))
    return registry.build("criterion", "channel_refill", {})(req)


def kept_per_filter(mask: Mask, name: str = "conv.weight") -> list[int]:
    return mask[name].reshape(mask[name].shape[0], -1).sum(1).tolist()


def test_top_filters_by_retained_count_are_refilled(registry):
    model = one_conv()
    dense = Mask.dense(model)
    # Keep 8: magnitude keeps 10 9 8 7 -6 5 0.9 0.8 -> counts 2, 3, 1, 2; filter 1 first,
    # then filter 0 (ties with filter 3 on count, wins on |w| sum): both whole.
    assert kept_per_filter(refill(registry, model, dense, 0.5)) == [4, 4, 0, 0]
    # Keep 6: filter 1 whole, then 2 of filter 0, by magnitude (10 and 9).
    six = refill(registry, model, dense, 0.625)
    assert kept_per_filter(six) == [2, 4, 0, 0]
    assert six["conv.weight"][0].reshape(-1).tolist() == [True, True, False, False]
    assert torch.equal(six["out.weight"], dense["out.weight"])  # fraction None: untouched


def test_a_refilled_filter_keeps_only_what_the_current_mask_has(registry):
    model = one_conv()
    mask = {k: v.clone() for k, v in Mask.dense(model).items()}
    mask["conv.weight"][1, 0, 1, 1] = False  # filter 1 lost a weight at an earlier level
    current = Mask(mask)
    # Keep round(15 * 0.6) = 9: magnitude keeps 10 9 | 8 7 -6 | 5 | 0.9 0.8 -0.7, so filter 1
    # (3, the larger |w| sum) comes back with its 3 current weights, then filter 3 whole,
    # then filter 0's two largest.
    new = refill(registry, model, current, 0.4)
    assert new.is_subset_of(current)
    assert kept_per_filter(new) == [2, 3, 0, 4]
    assert not bool(new["conv.weight"][1, 0, 1, 1])


@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_iterative_levels_leave_whole_filters(registry, scope):
    prune = registry.build("criterion", "channel_refill", {})
    magnitude = registry.build("criterion", "magnitude", {})
    model = small_model(registry)
    layers = prunable_layers(model)
    conv = [layer.name for layer in layers if layer.kind == "conv"]
    rules = Pruning(scope=scope, fraction={"conv": 0.3, "linear": 0.2, "output": 0.1})
    mask = Mask.dense(model, layers)
    for level in range(1, 5):
        req = request(model, mask, rules, level, layers)
        new = prune(req)
        assert new.is_subset_of(mask)
        kept = new.kept()
        assert all(sum(kept[n] for n in names) == keep for names, keep in req.groups)
        expected = magnitude(req)
        for name in conv:
            before = mask[name].reshape(mask[name].shape[0], -1).sum(1)
            after = new[name].reshape(new[name].shape[0], -1).sum(1)
            partial = ((after > 0) & (after < before)).sum()
            assert partial <= 1, (level, name, before.tolist(), after.tolist())
            # Refilling moves weights between filters, never between layers.
            assert kept[name] == expected.kept()[name]
        for layer in layers:
            if layer.name not in conv:
                assert torch.equal(new[layer.name], expected[layer.name])
        mask = new
        perturb(model, mask, seed=100 + level)
    for name in conv:  # each of the 4 levels split at most one filter: the rest are whole
        per_filter = mask[name].reshape(mask[name].shape[0], -1).float().mean(1)
        assert ((per_filter > 0) & (per_filter < 1)).sum() <= 4
        assert (per_filter == 0).sum() >= 1
