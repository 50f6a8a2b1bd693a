"""Masks: storage round trip, densities, subset checks, keep_top and prunable layers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lth_suite.errors import LthError
from lth_suite.pruning.masks import LAYER_KINDS, Mask, keep_top, prunable_layers, top_positions
from lth_suite.training.data import DataInfo


def random_mask(shapes: dict[str, tuple[int, ...]], density: float, seed: int = 0) -> Mask:
    generator = torch.Generator().manual_seed(seed)
    return Mask({name: torch.rand(shape, generator=generator) < density
                 for name, shape in shapes.items()})


SHAPES = {
    "odd": (7,),
    "one": (1,),
    "matrix": (3, 5),
    "conv": (4, 3, 3, 3),
    "conv_odd": (5, 1, 3, 1),
    "big": (101, 13),
}


# --- pack / unpack -----------------------------------------------------------------------

@pytest.mark.parametrize("density", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_pack_unpack_round_trip(density, seed):
    mask = random_mask(SHAPES, density, seed)
    back = Mask.unpack(mask.pack())
    assert back.equals(mask)
    assert list(back) == list(mask)
    for name, keep in back.items():
        assert keep.dtype == torch.bool
        assert tuple(keep.shape) == SHAPES[name]
        assert torch.equal(keep, mask[name])
    assert back.kept() == mask.kept()


def test_pack_every_size_up_to_two_bytes_round_trips():
    # Sizes around byte boundaries are where bit packing loses or invents bits.
    for size in range(1, 18):
        for pattern in (torch.arange(size) % 2 == 0, torch.arange(size) % 3 == 1):
            mask = Mask({"w": pattern.reshape(size, 1)})
            assert Mask.unpack(mask.pack()).equals(mask), size


def test_pack_is_compact():
    mask = random_mask({"w": (200, 200)}, 0.5)
    # One bit per weight (plus zip overhead): far below a byte per weight.
    assert len(mask.pack()) < 40_000 / 8 * 1.5


def test_unpack_keeps_names_with_dots_and_order():
    mask = Mask({"features.0.weight": torch.tensor([[True, False, True]]),
                 "classifier.3.weight": torch.tensor([False, True])})
    back = Mask.unpack(mask.pack())
    assert list(back) == ["features.0.weight", "classifier.3.weight"]
    assert back.equals(mask)


# --- densities and subsets -----------------------------------------------------------------

def test_density_and_layer_density():
    mask = Mask({"a": torch.tensor([True, False, False, True]),  # 2 of 4
                 "b": torch.tensor([[True, True, True], [True, False, False]])})  # 4 of 6
    assert mask.kept() == {"a": 2, "b": 4}
    assert mask.density() == pytest.approx(6 / 10)
    assert mask.layer_density() == pytest.approx({"a": 0.5, "b": 4 / 6})


def test_dense_mask_keeps_every_prunable_weight():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    mask = Mask.dense(model)
    assert set(mask) == {"0.weight", "2.weight"}
    assert mask.density() == 1.0
    assert mask["0.weight"].shape == model[0].weight.shape


def test_is_subset_of():
    big = Mask({"a": torch.tensor([True, True, False, True]), "b": torch.tensor([True, False])})
    small = Mask({"a": torch.tensor([True, False, False, True]), "b": torch.tensor([False, False])})
    other = Mask({"a": torch.tensor([True, False, True, False]), "b": torch.tensor([False, False])})
    assert small.is_subset_of(big)
    assert big.is_subset_of(big)
    assert not big.is_subset_of(small)
    assert not other.is_subset_of(big)  # index 2 is pruned in big


def test_apply_zeroes_exactly_the_pruned_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = random_mask({"0.weight": (4, 5), "2.weight": (2, 4)}, 0.5)
    mask.apply_(model)
    after = model.state_dict()
    for name, keep in mask.items():
        assert torch.all(after[name][~keep] == 0)
        assert torch.equal(after[name][keep], before[name][keep])
    assert torch.equal(after["0.bias"], before["0.bias"])  # biases are never masked


# --- keep_top -------------------------------------------------------------------------------

def test_keep_top_keeps_exact_count_of_highest_scores():
    generator = torch.Generator().manual_seed(3)
    scores = {"a": torch.randn(6, 7, generator=generator),
              "b": torch.randn(11, generator=generator)}
    mask = Mask({k: torch.ones_like(v, dtype=torch.bool) for k, v in scores.items()})
    new = keep_top(scores, mask, [(["a"], 17), (["b"], 4)])
    assert new.kept() == {"a": 17, "b": 4}
    for name in scores:
        kept, dropped = scores[name][new[name]], scores[name][~new[name]]
        assert kept.min() > dropped.max()


def test_keep_top_pools_a_group_under_one_threshold():
    scores = {"a": torch.arange(10.0), "b": torch.arange(10.0) + 100}
    mask = Mask({k: torch.ones(10, dtype=torch.bool) for k in scores})
    new = keep_top(scores, mask, [(["a", "b"], 12)])
    assert new.kept() == {"a": 2, "b": 10}
    assert new["a"].tolist() == [False] * 8 + [True] * 2


def test_keep_top_never_revives_pruned_weights():
    scores = {"w": torch.tensor([100.0, 1.0, 50.0, 2.0, 3.0, 99.0])}
    mask = Mask({"w": torch.tensor([False, True, False, True, True, False])})
    new = keep_top(scores, mask, [(["w"], 2)])
    assert new.is_subset_of(mask)
    assert new["w"].tolist() == [False, False, False, True, True, False]
    # Asking for more than is kept keeps what is kept, and nothing else.
    more = keep_top(scores, mask, [(["w"], 5)])
    assert more.equals(mask)


@pytest.mark.parametrize("bad", [float("-inf"), float("nan")])
def test_keep_top_never_revives_even_with_non_finite_scores(bad):
    scores = {"w": torch.tensor([bad, 5.0, bad, bad, 1.0, bad])}
    mask = Mask({"w": torch.tensor([True, False, True, True, False, True])})
    new = keep_top(scores, mask, [(["w"], 3)])
    assert new.is_subset_of(mask)
    assert new.kept() == {"w": 3}


def test_keep_top_nan_ranks_below_every_number():
    scores = {"w": torch.tensor([float("nan"), -5.0, float("nan"), 2.0])}
    mask = Mask({"w": torch.ones(4, dtype=torch.bool)})
    assert keep_top(scores, mask, [(["w"], 2)])["w"].tolist() == [False, True, False, True]


def test_keep_top_is_deterministic_and_breaks_ties_by_position():
    scores = {"w": torch.ones(3, 4)}
    mask = Mask({"w": torch.tensor([[True, False, True, True]] * 3)})
    first = keep_top(scores, mask, [(["w"], 4)])
    second = keep_top(scores, mask, [(["w"], 4)])
    assert first.equals(second)
    # Row-major position order among the kept weights: (0,0), (0,2), (0,3), (1,0).
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[0, [0, 2, 3]] = True
    expected[1, 0] = True
    assert torch.equal(first["w"], expected)


def test_keep_top_leaves_ungrouped_tensors_alone_and_does_not_mutate_input():
    mask = Mask({"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, True])})
    original = {k: v.clone() for k, v in mask.items()}
    scores = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([1.0, 2.0, 3.0])}
    new = keep_top(scores, mask, [(["a"], 1)])
    assert new["a"].tolist() == [False, True, False]
    assert torch.equal(new["b"], original["b"])
    for name in mask:
        assert torch.equal(mask[name], original[name])


def test_keep_top_zero_keep_prunes_the_whole_group():
    mask = Mask({"w": torch.ones(5, dtype=torch.bool)})
    assert keep_top({"w": torch.randn(5)}, mask, [(["w"], 0)]).kept() == {"w": 0}


def test_keep_top_rejects_scores_of_the_wrong_size():
    mask = Mask({"w": torch.ones(5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="w"):
        keep_top({"w": torch.randn(6)}, mask, [(["w"], 2)])


# --- prunable layers ------------------------------------------------------------------------

class WithNorms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, 8)
        self.ln = nn.LayerNorm(8)
        self.out = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)
        return self.out(self.ln(self.fc(x)))


class HeadFirst(nn.Module):
    """The classifier is defined before an auxiliary projection: module order misleads."""

    output_layer = "head"

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_prunable_layers_kinds_and_no_biases_or_norms():
    model = WithNorms()
    layers = prunable_layers(model)
    assert [(layer.name, layer.kind) for layer in layers] == [
        ("conv.weight", "conv"), ("fc.weight", "linear"), ("out.weight", "output")]
    params = dict(model.named_parameters())
    for layer in layers:
        assert layer.kind in LAYER_KINDS
        assert layer.numel == params[layer.name].numel()
    names = {layer.name for layer in layers}
    assert not any(name.endswith(".bias") for name in names)
    assert not any(name.startswith(("bn.", "ln.")) for name in names)


def test_prunable_layers_honours_output_layer_attribute():
    kinds = {layer.name: layer.kind for layer in prunable_layers(HeadFirst())}
    assert kinds == {"body.weight": "linear", "head.weight": "output", "aux.weight": "linear"}


def test_prunable_layers_rejects_an_unknown_output_layer():
    model = HeadFirst()
    model.output_layer = "haed"
    with pytest.raises(LthError, match="haed"):
        prunable_layers(model)


def test_prunable_layers_default_output_is_last_linear(registry):
    model = registry.build("architecture", "conv", {"depth": 2, "width": 2, "hidden": [8]},
                           DataInfo("t", (1, 8, 8), 4))
    layers = prunable_layers(model)
    assert [layer.kind for layer in layers] == ["conv", "conv", "linear", "output"]
    assert layers[-1].numel == 8 * 4


def test_conv_only_model_has_no_output_layer():
    layers = prunable_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)))
    assert [layer.kind for layer in layers] == ["conv", "conv"]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from([-math.inf, -1.0, 0.0, 0.5, 2.0, math.inf]),
                       min_size=1, max_size=40),
       count=st.integers(min_value=-2, max_value=45))
def test_top_positions_is_what_a_stable_descending_sort_keeps(values, count):
    tensor = torch.tensor(values, dtype=torch.float64)  # few distinct values: many ties
    expected = torch.argsort(tensor, descending=True, stable=True)[:max(count, 0)]
    assert sorted(top_positions(tensor, count).tolist()) == sorted(expected.tolist())
