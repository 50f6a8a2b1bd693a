"""Generic prunable tensors: torch's weight-bearing modules, declared module types, tied
weights, and the glob patterns of pruning.fraction and pruning.exclude."""

import pytest
import torch
from torch import nn

from lth_suite.errors import SpecError
from lth_suite.lottery.experiment import check_patterns
from lth_suite.pruning.masks import Mask
from lth_suite.pruning.prunable import PrunableModule, prunable_layers
from lth_suite.pruning.targets import layer_fraction, target_groups
from lth_suite.spec.loading import canonical, spec_hash
from lth_suite.spec.sections import ExperimentSpec, Pruning


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.c1 = nn.Conv1d(8, 8, 3)
        self.c3 = nn.Conv3d(2, 2, 1)
        self.t2 = nn.ConvTranspose2d(3, 5, 2)
        self.attn = nn.MultiheadAttention(8, 2)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 10)


def test_every_torch_weight_bearing_module_is_prunable_and_nothing_else():
    layers = {layer.name: layer for layer in prunable_layers(Zoo())}
    assert list(layers) == ["c1.weight", "c3.weight", "t2.weight", "attn.in_proj_weight",
                            "attn.out_proj.weight", "head.weight"]
    assert layers["head.weight"].kind == "output"
    assert layers["attn.in_proj_weight"].kind == "linear"
    assert layers["t2.weight"].in_axis == 0 and layers["c1.weight"].in_axis == 1


def test_separate_qkv_projections_are_each_prunable():
    attn = nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    names = [layer.name for layer in prunable_layers(attn)]
    assert names == ["q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"]


class Transposed(nn.Module):
    """A layer storing its weight as (in, out), as GPT-2's Conv1D does."""

    def __init__(self, fan_in, fan_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_in, fan_out))

    def forward(self, x):
        return x @ self.weight


def test_a_declared_module_type_is_prunable_with_its_own_kind_and_axis():
    model = nn.Sequential(Transposed(4, 6), nn.Linear(6, 2))
    assert [layer.name for layer in prunable_layers(model)] == ["1.weight"]
    declared = PrunableModule(Transposed, kind="transposed", in_axis=0)
    layers = prunable_layers(model, [declared])
    assert [(x.name, x.kind, x.in_axis) for x in layers] == [("0.weight", "transposed", 0),
                                                             ("1.weight", "output", 1)]
    as_string = PrunableModule(f"{__name__}:Transposed", kind="transposed", in_axis=0)
    assert prunable_layers(model, [as_string]) == layers
    missing = PrunableModule("no_such_library.layers:Dense")
    assert prunable_layers(model, [missing]) == prunable_layers(model)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(6, 6)
        self.middle = nn.Linear(6, 6)
        self.decoder = nn.Linear(6, 6)
        self.decoder.weight = self.encoder.weight


def test_a_tied_weight_has_one_mask_and_counts_once():
    model = Tied()
    layers = prunable_layers(model)
    assert [(x.name, x.kind) for x in layers] == [("encoder.weight", "output"),
                                                  ("middle.weight", "linear")]
    assert sum(x.numel for x in layers) == sum(p.numel() for n, p in model.named_parameters()
                                               if n.endswith("weight"))
    mask = Mask.dense(model, layers)
    assert list(mask) == ["encoder.weight", "middle.weight"]
    pruned = Mask({**mask, "encoder.weight": torch.rand(6, 6) > 0.5})
    pruned.apply_(model)
    assert torch.equal(model.decoder.weight == 0, ~pruned["encoder.weight"])


def test_norms_biases_and_embeddings_are_pruned_only_when_named():
    model = Zoo()
    names = {x.name for x in prunable_layers(model, named=["pos_embed", "norm.weight"])}
    assert {"pos_embed", "norm.weight"} <= names
    assert not {"embed.weight", "norm.bias", "head.bias"} & names


def rules(**fields):
    return Pruning.model_validate(fields)


def test_patterns_set_fractions_first_match_wins_and_exclude_takes_globs():
    layers = prunable_layers(Zoo())
    pruning = rules(fraction={"attn.*": 0.5, "*": 0.3, "output": 0.05}, exclude=["c?"])
    fractions = {x.name: layer_fraction(x, pruning) for x in layers}
    assert fractions == {"c1.weight": None, "c3.weight": None, "t2.weight": 0.3,
                         "attn.in_proj_weight": 0.5, "attn.out_proj.weight": 0.5,
                         "head.weight": 0.3}
    pruning = rules(fraction={"head": 0.4, "attn.out_proj": None})
    fractions = {x.name: layer_fraction(x, pruning) for x in layers}
    assert fractions["head.weight"] == 0.4 and fractions["attn.out_proj.weight"] is None
    assert fractions["c1.weight"] == 0.2 and fractions["attn.in_proj_weight"] == 0.2


def test_global_scope_pools_a_kind_per_fraction():
    model = Zoo()
    layers = prunable_layers(model)
    pruning = rules(scope="global", fraction={"attn.*": 0.5})
    groups = target_groups(layers, Mask.dense(model, layers), pruning, 1)
    names = [sorted(g[0]) for g in groups]
    assert ["attn.in_proj_weight", "attn.out_proj.weight"] in names
    assert ["c1.weight", "c3.weight", "t2.weight"] in names


def test_patterns_keep_the_canonical_form_of_specs_without_them():
    plain = ExperimentSpec()
    assert canonical(plain)["pruning"]["fraction"] == {"conv": 0.2, "linear": 0.2, "output": 0.1}
    patterned = ExperimentSpec.model_validate({"pruning": {"fraction": {"blocks.*": 0.3}}})
    assert canonical(patterned)["pruning"]["fraction"]["blocks.*"] == 0.3
    assert ExperimentSpec.model_validate(canonical(patterned)) == patterned
    assert spec_hash(patterned) != spec_hash(plain)


@pytest.mark.parametrize("field", ["fraction", "exclude"])
def test_a_pattern_that_finds_nothing_names_its_field(field):
    value = {"atn.*": 0.3} if field == "fraction" else ["atn.*"]
    with pytest.raises(SpecError, match=f"pruning.{field}.*atn"):
        check_patterns(rules(**{field: value}), prunable_layers(Zoo()))


@pytest.mark.parametrize("value", [1.5, 0, "x"])
def test_a_pattern_fraction_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="fraction"):
        ExperimentSpec.model_validate({"pruning": {"fraction": {"head": value}}})


def test_n_m_groups_only_weights_whose_inputs_are_axis_1():
    from lth_suite.pruning.shaping import nm_groups

    model = nn.Sequential(nn.Linear(8, 8), nn.ConvTranspose2d(8, 8, 1), nn.Linear(8, 4))
    layers = prunable_layers(model)
    grouped = [names[0] for names, _ in nm_groups(layers, Mask.dense(model, layers), rules(),
                                                  2, 4)]
    assert grouped == ["0.weight", "2.weight"]


def test_a_bad_pattern_fraction_names_the_key_as_written(registry):
    from lth_suite.spec.loading import build_spec

    with pytest.raises(SpecError) as error:
        build_spec({"pruning": {"fraction": {"blocks.*": 2}}}, registry)
    assert [field for field, _ in error.value.problems] == ["pruning.fraction.blocks.*"]
    schema = ExperimentSpec.model_json_schema()["$defs"]["Fractions"]
    assert "patterns" not in schema["properties"] and schema["additionalProperties"]
