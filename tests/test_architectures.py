"""Every registered architecture builds, runs forward and backward, and reports its layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth_suite.data import DataInfo
from lth_suite.masks import LAYER_KINDS, Mask, prunable_layers
from lth_suite.plugins import load_plugins

ARCHITECTURES = load_plugins(installed=False).registry.names("architecture")
SMALL = {"mlp": {"hidden": [32, 16]}, "conv": {"width": 4, "hidden": [32, 16]}}
INFOS = [DataInfo("gray", (1, 8, 8), 10), DataInfo("rgb", (3, 16, 16), 7)]


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_backward_and_prunable_layers(registry, name, info):
    torch.manual_seed(0)
    model = registry.build("architecture", name, SMALL.get(name, {}), info)
    x = torch.randn(5, *info.input_shape)
    logits = model(x)
    assert logits.shape == (5, info.num_classes)
    F.cross_entropy(logits, torch.arange(5) % info.num_classes).backward()
    params = dict(model.named_parameters())
    for pname, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    layers = prunable_layers(model)
    assert layers, f"{name} has no prunable layers"
    assert all(layer.kind in LAYER_KINDS for layer in layers)
    assert [layer.kind for layer in layers].count("output") == 1
    for layer in layers:
        assert layer.name.endswith(".weight") and params[layer.name].numel() == layer.numel
    output = next(layer for layer in layers if layer.kind == "output")
    assert params[output.name].shape[0] == info.num_classes
    # Every prunable weight of the model is masked, and nothing else.
    assert set(Mask.dense(model)) == {layer.name for layer in layers}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_same_seed_same_weights(registry, name):
    info = INFOS[1]
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        states.append(registry.build("architecture", name, SMALL.get(name, {}), info).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_mlp_default_is_lenet_300_100(registry):
    model = registry.build("architecture", "mlp", {}, DataInfo("mnist", (1, 28, 28), 10))
    assert sum(p.numel() for p in model.parameters()) == 266_610
    layers = prunable_layers(model)
    assert [(layer.kind, layer.numel) for layer in layers] == [
        ("linear", 784 * 300), ("linear", 300 * 100), ("output", 100 * 10)]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_conv_depths_on_cifar_shaped_input(registry, depth):
    info = DataInfo("cifar10", (3, 32, 32), 10)
    model = registry.build("architecture", "conv", {"depth": depth}, info)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # Conv-2/4/6 of the paper: pairs of 64, 128, 256 channels, then FC 256, 256, 10.
    widths = [64, 64, 128, 128, 256, 256][:depth]
    assert [c.out_channels for c in convs] == widths
    assert all(c.kernel_size == (3, 3) for c in convs)
    side = 32 // 2 ** (depth // 2)
    assert [(m.in_features, m.out_features) for m in linears] == [
        (widths[-1] * side * side, 256), (256, 256), (256, 10)]
    kinds = [layer.kind for layer in prunable_layers(model)]
    assert kinds == ["conv"] * depth + ["linear", "linear", "output"]


def test_conv_too_deep_for_the_input_is_a_value_error(registry):
    with pytest.raises(ValueError, match="depth 6"):
        registry.build("architecture", "conv", {"depth": 6}, DataInfo("t", (1, 4, 4), 10))


def test_conv_on_flat_input_is_a_clear_value_error(registry):
    with pytest.raises(ValueError, match="channels, height, width"):
        registry.build("architecture", "conv", {}, DataInfo("flat", (64,), 10))


def test_dropout_is_off_in_eval(registry):
    info = INFOS[0]
    torch.manual_seed(0)
    model = registry.build("architecture", "mlp", {"hidden": [32], "dropout": 0.5}, info)
    x = torch.randn(4, *info.input_shape)
    model.eval()
    assert torch.equal(model(x), model(x))
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
