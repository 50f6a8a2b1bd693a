"""Registry-driven invariants over timm's model families (tiny inputs, random weights).

Each family is built through the plugin as a spec would build it; every check runs on
every family. ``python -m pytest plugins/lth-suite-timm/tests/test_invariants.py -q -rA``
prints the models x checks table (see ``table`` below).
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lth_suite.analysis.shrink import masked_state_dict, shrink
from lth_suite.api import DataInfo, Mask, PruneRequest, prunable_layers
from lth_suite.lottery.pretrained import load_pretrained, read_state_dict
from lth_suite.pruning.targets import target_groups
from lth_suite.spec.sections import Pruning, Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.single import SingleNetwork

# family -> (timm name, kwargs, image side): each family's smallest member, or a real
# configuration cut to a couple of blocks, so that every check takes a blink.
FAMILIES = {
    "vit": ("vit_tiny_patch16_224", {"img_size": 16, "patch_size": 4, "depth": 2,
                                     "embed_dim": 48}, 16),
    "deit": ("deit_tiny_patch16_224", {"img_size": 16, "patch_size": 4, "depth": 2,
                                       "embed_dim": 48}, 16),
    "convnext": ("convnext_atto", {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)}, 32),
    "resnet": ("test_resnet", {}, 32),
    "efficientnet": ("test_efficientnet", {}, 32),
    "mobilenetv3": ("mobilenetv3_small_050", {}, 32),
}
CLASSES, CHANNELS = 10, 3
NOT_PRUNED = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.Embedding)


@pytest.fixture(scope="session")
def built(plugins):
    """A function building a family's model with a seed (each built once, then copied)."""
    cache: dict[tuple[str, int], nn.Module] = {}

    def make(family: str, seed: int = 0) -> nn.Module:
        if (family, seed) not in cache:
            arch, kwargs, side = FAMILIES[family]
            torch.manual_seed(seed)
            cache[family, seed] = plugins.registry.build(
                "architecture", "timm", {"arch": arch, "kwargs": kwargs},
                DataInfo("tiny", (CHANNELS, side, side), CLASSES))
        return copy.deepcopy(cache[family, seed])
    return make


def inputs(family: str, count: int = 4, seed: int = 0) -> torch.Tensor:
    side = FAMILIES[family][2]
    return torch.randn(count, CHANNELS, side, side, generator=torch.Generator().manual_seed(seed))


def magnitude_levels(plugins, model: nn.Module, levels: int) -> list[Mask]:
    layers = prunable_layers(model)
    masks = [Mask.dense(model, layers)]
    criterion = plugins.registry.build("criterion", "magnitude", {})
    for level in range(1, levels + 1):
        groups = target_groups(layers, masks[-1], Pruning(), level)
        masks.append(criterion(PruneRequest(model, masks[-1], layers, groups, level,
                                            torch.Generator().manual_seed(level))))
    return masks


def random_half(model: nn.Module) -> Mask:
    generator = torch.Generator().manual_seed(0)
    return Mask({k: torch.rand(v.shape, generator=generator) < 0.5
                 for k, v in Mask.dense(model).items()})


pytestmark = pytest.mark.parametrize("family", sorted(FAMILIES))


def test_prunable_tensors_found(built, family):
    model = built(family)
    layers = {layer.name: layer for layer in prunable_layers(model)}
    weights = {f"{n}.weight" for n, m in model.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))}
    assert set(layers) == weights
    never = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, NOT_PRUNED)
             for p, _ in m.named_parameters(recurse=False)}
    never |= {n for n, _ in model.named_parameters() if n.endswith(("bias", "pos_embed",
                                                                    "cls_token"))}
    assert not never & set(layers)
    output = [name for name, layer in layers.items() if layer.kind == "output"]
    assert output == [f"{model.pretrained_cfg['classifier']}.weight"]


def test_parameter_counts_equal_timms(built, family):
    model = built(family)
    layers = prunable_layers(model)
    prunable = {layer.name for layer in layers}
    rest = sum(p.numel() for n, p in model.named_parameters() if n not in prunable)
    assert sum(layer.numel for layer in layers) + rest == sum(p.numel() for p in model.parameters())
    assert model(inputs(family)).shape == (4, CLASSES)


def test_masks_only_shrink(plugins, built, family):
    masks = magnitude_levels(plugins, built(family), levels=2)
    for before, after in zip(masks, masks[1:]):
        assert after.is_subset_of(before) and after.density() < before.density()


def test_pruned_weights_stay_zero_through_adamw(plugins, built, family):
    model = built(family)
    mask = magnitude_levels(plugins, model, levels=1)[-1]
    config = TrainConfig.resolve(Training(optimizer="adamw", lr=1e-2, weight_decay=0.1,
                                          batch_size=4, duration="3it"), 4)
    network = SingleNetwork(model, mask, config, data_seed=0, device=torch.device("cpu"))
    x, y = inputs(family), torch.arange(4)
    for iteration in range(3):
        network.step(iteration, [(x, y)])
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        assert not params[name][~keep].any(), name
        assert params[name][keep].ne(0).any(), name


def test_one_mask_per_parameter(built, family):
    model = built(family)
    layers = prunable_layers(model)
    tensors = [dict(model.named_parameters())[layer.name] for layer in layers]
    assert len({id(t) for t in tensors}) == len(layers)
    head = model.get_classifier()
    tied = nn.ModuleDict({"model": model, "copy": nn.Linear(head.in_features, CLASSES)})
    tied.copy.weight = head.weight  # a tie the model did not have: still one mask
    assert len(prunable_layers(tied)) == len(layers)


def test_rewinds_to_a_pretrained_file(built, family, tmp_path):
    pretrained = built(family, seed=1)
    path = tmp_path / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in pretrained.state_dict().items()}, str(path))
    start = built(family, seed=2)
    load_pretrained(start, read_state_dict(str(path)), str(path))
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(start.state_dict()[name], tensor), name


def test_export_reloads_and_matches(plugins, built, family):
    model = built(family).eval()
    mask = magnitude_levels(plugins, model, levels=1)[-1]
    state = masked_state_dict(model, mask)
    mask.apply_(model)
    fresh = built(family, seed=3).eval()
    fresh.load_state_dict(state)
    x = inputs(family)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    shrunk = shrink(model, mask)
    assert shrunk.model is None and shrunk.reason and "\n" not in shrunk.reason


BATCH_NORM = {"resnet", "efficientnet", "mobilenetv3"}


def test_population_training_where_the_model_allows_it(built, family):
    from lth_suite.training.data import Splits
    from lth_suite.training.population import Member, train_population, why_not_batchable

    model = built(family)
    reason = why_not_batchable(model)
    if family in BATCH_NORM:  # running statistics: networks train one at a time, and why
        assert reason and "BatchNorm" in reason and "\n" not in reason
        return
    assert reason is None
    x, y = inputs(family, count=8), torch.arange(8) % CLASSES
    data = Splits(x, y, x, y, x, y, DataInfo("tiny", tuple(x.shape[1:]), CLASSES))
    masks = random_half(model)
    members = [Member({k: v.clone() for k, v in model.state_dict().items()}, masks, seed)
               for seed in (0, 1)]
    config = TrainConfig.resolve(Training(optimizer="adamw", lr=1e-2, weight_decay=0.1,
                                          batch_size=4, duration="2it", eval_every=2), 8)
    results = train_population(model, members, data, config)
    for result in results:
        for name, keep in masks.items():
            assert not result.state[name][~keep].any(), name
    head = f"{model.pretrained_cfg['classifier']}.weight"
    assert not torch.equal(results[0].state[head], model.state_dict()[head])  # it trained
