"""Layer-wise allocations (every registered one, against their formulas on the model zoo),
the lamp criterion's scores and N:M patterns."""

from __future__ import annotations

import math

import pytest
import torch

from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.plugins.manager import load_plugins
from lth_suite.pruning import nm
from lth_suite.pruning.allocation import LayerShape, erk_scale, shapes_of
from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.pruning.shaping import nm_groups
from lth_suite.pruning.targets import PruneRequest, target_groups
from lth_suite.spec.loading import build_spec, spec_hash
from lth_suite.spec.sections import Pruning
from lth_suite.spec.sparsity import Sparsity
from lth_suite.training.data import DataInfo

REGISTRY = load_plugins(installed=False).registry
ALLOCATIONS = REGISTRY.names("allocation")
ZOO = [("mlp", {"hidden": [300, 100]}, DataInfo("mnist", (1, 28, 28), 10)),
       ("conv", {"depth": 4}, DataInfo("cifar", (3, 32, 32), 10)),
       ("vgg", {"depth": 11, "width": 8}, DataInfo("cifar", (3, 32, 32), 10)),
       ("resnet", {"depth": 20}, DataInfo("cifar", (3, 32, 32), 10))]


def zoo_shapes(name, params, info) -> list[LayerShape]:
    model = REGISTRY.build("architecture", name, params, info)
    layers = [layer.name for layer in prunable_layers(model)]
    return shapes_of(Mask.dense(model), layers)


@pytest.mark.parametrize("density", [0.5, 0.1, 0.02])
@pytest.mark.parametrize("allocation", ALLOCATIONS)
@pytest.mark.parametrize("zoo", ZOO, ids=lambda z: z[0])
def test_every_allocation_totals_its_density_within_layer_bounds(allocation, zoo, density):
    shapes = zoo_shapes(*zoo)
    counts = REGISTRY.build("allocation", allocation, {})(shapes, density)
    assert len(counts) == len(shapes)
    assert sum(counts) == round(density * sum(s.numel for s in shapes))
    assert all(0 <= count <= s.numel for count, s in zip(counts, shapes))


@pytest.mark.parametrize("density", [0.5, 0.1])
@pytest.mark.parametrize("zoo", ZOO, ids=lambda z: z[0])
def test_erk_densities_follow_the_formula_with_dense_layers_clipped(zoo, density):
    shapes = zoo_shapes(*zoo)
    counts = REGISTRY.build("allocation", "erk", {})(shapes, density)
    layer_density = [c / s.numel for c, s in zip(counts, shapes)]
    sparse = [i for i, d in enumerate(layer_density) if d < 1]
    assert sparse
    # density_l = eps x (sum of dims) / (product of dims) for every sparse layer, eps
    # solved from the overall density over the non-clipped layers; counts round to 1 weight
    dense = [i for i in range(len(shapes)) if i not in sparse]
    budget = density * sum(s.numel for s in shapes) - sum(shapes[i].numel for i in dense)
    eps = budget / sum(erk_scale(shapes[i].shape) * shapes[i].numel for i in sparse)
    for i in sparse:
        assert abs(counts[i] - eps * erk_scale(shapes[i].shape) * shapes[i].numel) <= 1
    # the clipped (dense) layers are exactly those whose formula density reaches 1
    for i in dense:
        assert eps * erk_scale(shapes[i].shape) >= 1


def test_erk_on_lenet_by_hand():
    shapes = [LayerShape("fc1", (300, 784)), LayerShape("fc2", (100, 300)),
              LayerShape("out", (10, 100))]
    counts = REGISTRY.build("allocation", "erk", {})(shapes, 0.1)
    # the formula's first eps would give the output layer 110/1000 x 26620/1594 > 1:
    # it is clipped to dense and eps is solved again over fc1 and fc2
    assert (10 + 100) / (10 * 100) * 0.1 * 266200 / (1084 + 400 + 110) > 1
    eps = (0.1 * 266200 - 1000) / (1084 + 400)
    expected = [eps * 1084 / 235200, eps * 400 / 30000, 1.0]
    assert [c / s.numel for c, s in zip(counts, shapes)] == pytest.approx(expected, abs=1e-4)
    assert sum(counts) == 26620
    conv = LayerShape("c", (64, 3, 3, 3))
    assert erk_scale(conv.shape) == (64 + 3 + 3 + 3) / (64 * 3 * 3 * 3)


def test_uniform_gives_every_layer_the_overall_density():
    shapes = zoo_shapes(*ZOO[1])
    counts = REGISTRY.build("allocation", "uniform", {})(shapes, 0.2)
    for count, shape in zip(counts, shapes):
        assert abs(count - 0.2 * shape.numel) <= 1


def test_lamp_scores_by_hand():
    from lth_suite.builtin.criteria.score import lamp_scores

    weight = torch.tensor([[3.0, -1.0], [0.0, 2.0]])
    scores = lamp_scores(weight)
    # ascending squares 0, 1, 4, 9: each over the sum of itself and the larger ones
    assert scores.flatten().tolist() == pytest.approx([9 / 9, 1 / 14, 0.0, 4 / 13])
    assert torch.equal(torch.argsort(scores.flatten()), torch.argsort(weight.abs().flatten()))


def request_for(criterion_name: str, rules: Pruning, groups=None) -> tuple[object, PruneRequest]:
    torch.manual_seed(0)
    model = REGISTRY.build("architecture", "mlp", {"hidden": [64, 32]},
                           DataInfo("mnist", (1, 28, 28), 10))
    layers = prunable_layers(model)
    mask = Mask.dense(model)
    groups = groups if groups is not None else target_groups(layers, mask, rules, 1)
    request = PruneRequest(model, mask, layers, groups, 1, torch.Generator().manual_seed(0))
    return REGISTRY.build("criterion", criterion_name, {}), request


def test_lamp_global_differs_from_magnitude_global():
    rules = Pruning(scope="global", fraction={"linear": 0.6, "output": 0.6})
    masks = {}
    for name in ("magnitude", "lamp"):
        criterion, request = request_for(name, rules)
        masks[name] = criterion(request)
    assert masks["lamp"].kept() != masks["magnitude"].kept()
    assert sum(masks["lamp"].kept().values()) == sum(masks["magnitude"].kept().values())


def test_nm_projection_of_magnitude_is_nm_magnitude_pruning():
    torch.manual_seed(0)
    weight = torch.randn(6, 16)
    dense = Mask({"w": torch.ones_like(weight, dtype=torch.bool)})
    unstructured = Mask({"w": weight.abs() >= weight.abs().flatten().kthvalue(48).values})
    projected = nm.project(unstructured, dense, {"w": weight}, 2, 4, {"w"})["w"]
    groups = weight.abs().reshape(-1, 4)
    expected = torch.zeros_like(groups, dtype=torch.bool)
    expected.scatter_(1, groups.topk(2, dim=1).indices, True)
    assert torch.equal(projected, expected.reshape(6, 16))
    assert nm.holds(projected, 2, 4) and int(projected.sum()) == 48


def test_nm_groups_run_along_input_channels_of_a_conv():
    keep = torch.zeros(2, 8, 3, 3, dtype=torch.bool)
    keep[:, 0:2] = True  # channels 0,1 of every kernel position: 2 of each group of 4
    assert nm.holds(keep, 2, 4)
    keep[0, 2, 1, 1] = True  # a third channel of one group at one position
    assert not nm.holds(keep, 2, 4)
    groups = nm.to_groups(keep, 4)
    assert torch.equal(nm.from_groups(groups, keep.shape), keep)
    assert nm.fits((2, 8, 3, 3), 4) and not nm.fits((2, 3, 3, 3), 4)


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "4:8"])
def test_nm_random_like_keeps_the_pattern_and_counts(pattern):
    n, m = map(int, pattern.split(":"))
    generator = torch.Generator().manual_seed(0)
    ticket = Mask({"a": nm.top_n(torch.rand(4, 16), torch.ones(4, 16, dtype=torch.bool), n, m),
                   "b": torch.rand(3, 5) > 0.5})
    random = nm.random_like(ticket, {"a"}, n, m, generator)
    assert random.kept() == ticket.kept()
    assert nm.holds(random["a"], n, m) and not torch.equal(random["a"], ticket["a"])


@pytest.mark.parametrize("criterion", ["magnitude", "random", "lamp"])
def test_nm_with_each_criterion_holds_the_pattern_exactly(criterion):
    rules = Pruning()
    _, probe = request_for(criterion, rules)
    groups = nm_groups(probe.layers, probe.mask, rules, 2, 4)
    chosen, request = request_for(criterion, rules, groups)
    weights = dict(request.model.named_parameters())
    mask = nm.project(chosen(request), request.mask, weights, 2, 4, {g[0][0] for g in groups})
    for name, keep in mask.items():
        assert nm.holds(keep, 2, 4) and int(keep.sum()) == keep.numel() // 2, name


def test_nm_experiment_reaches_the_pattern_level_by_level(tiny, registry, tracking_uri):
    tiny["sparsity"] = {"pattern": "2:4"}
    finished = run_experiment(build_spec(tiny, registry), load_plugins(installed=False),
                              tracking_uri)
    for level, kept in ((1, 3), (2, 2)):  # the default schedule: M-1, then N
        for branch in finished.levels[level].branches:  # the controls keep the pattern too
            for name, keep in branch.mask.items():
                assert nm.holds(keep, kept, 4), (level, branch.branch, name)
                assert int(keep.sum()) == keep.numel() * kept // 4
    ticket1, ticket2 = (finished.levels[lv].branches[0].mask for lv in (1, 2))
    assert ticket2.is_subset_of(ticket1)


def test_sparsity_spec_errors_name_the_field(tiny, registry):
    for section, field in (({"pattern": "4:2"}, "sparsity.pattern"),
                           ({"dynamic": "rigl"}, "sparsity"),
                           ({"allocation": "nope"}, "sparsity.allocation.name"),
                           ({"dynamic": {"name": "rigl", "every": 0}, "density": 0.1},
                            "sparsity.dynamic.every"),
                           ({"pattern": "2:4", "pattern_schedule": [2, 3]}, "sparsity")):
        with pytest.raises(SpecError) as caught:
            build_spec({**tiny, "sparsity": section}, registry)
        assert caught.value.problems[0][0] == field, (section, caught.value.problems)


def test_absent_section_keeps_the_hash_and_a_present_one_changes_it(tiny, registry):
    plain = spec_hash(build_spec(tiny, registry))
    assert plain == spec_hash(build_spec({**tiny, "sparsity": None}, registry))
    assert plain != spec_hash(build_spec({**tiny, "sparsity": {"pattern": "2:4"}}, registry))


def test_default_pattern_schedule_steps_from_m_toward_n():
    section = Sparsity(pattern="2:8")
    assert [section.kept_per_group(level, 3) for level in (1, 2, 3)] == [6, 4, 2]
    assert [Sparsity(pattern="2:4").kept_per_group(level, 1) for level in (1,)] == [2]
    explicit = Sparsity(pattern="2:4", pattern_schedule=[3, 2])
    assert [explicit.kept_per_group(level, 4) for level in (1, 2, 3, 4)] == [3, 2, 2, 2]
    assert math.isclose(0.5, 2 / 4)


def two_four_mlp():
    torch.manual_seed(0)
    model = REGISTRY.build("architecture", "mlp", {"hidden": [64, 32]},
                           DataInfo("mnist", (1, 28, 28), 10))
    weights = dict(model.named_parameters())
    mask = Mask({name: nm.top_n(weights[name].abs(), torch.ones_like(keep), 2, 4)
                 for name, keep in Mask.dense(model).items()})
    mask.apply_(model)
    return model, mask


def test_export_names_the_two_four_weights_and_says_why_they_stay_dense(tmp_path):
    from lth_suite.analysis.semistructured import export_semi_structured, two_four_linears

    model, mask = two_four_mlp()
    assert two_four_linears(model, mask) == list(mask)
    unstructured = Mask({name: torch.ones_like(keep) for name, keep in mask.items()})
    assert two_four_linears(model, unstructured) == []
    result = export_semi_structured(model, mask, tmp_path)
    if not torch.cuda.is_available():
        assert result.converted == [] and result.file is None and "CUDA" in result.reason
        assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="semi-structured tensors need CUDA")
def test_semi_structured_export_on_cuda_computes_the_masked_network(tmp_path):
    from lth_suite.analysis.semistructured import export_semi_structured

    model, mask = two_four_mlp()
    result = export_semi_structured(model, mask, tmp_path)
    assert result.converted or result.reason  # a GPU without sparse tensor cores says why
    if result.converted:
        sparse = torch.load(result.file, weights_only=False)
        x = torch.randn(64, 1, 28, 28)
        expected = model.to("cuda", torch.float16)(x.to("cuda", torch.float16))
        assert torch.allclose(sparse(x.to("cuda", torch.float16)), expected, atol=5e-2)


def test_schema_offers_the_allocation_and_dynamic_plugins():
    from lth_suite.spec.loading import json_schema

    sparsity = json_schema(REGISTRY)["$defs"]["Sparsity"]["properties"]
    for field, kind in (("allocation", "allocation"), ("dynamic", "dynamic")):
        consts = {option["properties"]["name"]["const"] for option in sparsity[field]["oneOf"]
                  if "properties" in option}
        assert consts == set(REGISTRY.names(kind)), field
