"""Built-in architectures: LeNet-style MLPs, the paper's Conv-2/4/6, CIFAR VGG and ResNet.

Layers have readable names (``fc1``, ``conv3``, ``out``): they name the masks, the
``pruning.exclude`` entries and the per-layer metrics.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..data import DataInfo
from ..hookspecs import hookimpl
from ..registry import RegisterFn
from .cifar_nets import VGG, ResNet, ResNetParams, VGGParams, image_shape


class MLPParams(BaseModel):
    """A fully connected network; the default is LeNet-300-100."""

    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = Field(default=[300, 100], description="hidden layer widths")
    dropout: float = Field(default=0.0, ge=0, lt=1)


class ConvParams(BaseModel):
    """Conv-2/4/6 of Frankle & Carbin (2019), figure 2."""

    model_config = ConfigDict(extra="forbid")
    depth: Literal[2, 4, 6] = 2
    width: int = Field(default=64, ge=1, description="channels of the first conv pair")
    hidden: list[int] = Field(default=[256, 256], description="fully connected widths")
    dropout: float = Field(default=0.0, ge=0, lt=1)


def _fully_connected(widths: list[int], num_classes: int,
                     dropout: float) -> OrderedDict[str, nn.Module]:
    """``fc1``, ``relu1``, [``drop1``], ``fc2``, ..., ``out``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:]), start=1):
        layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
        layers[f"relu_fc{i}"] = nn.ReLU()
        if dropout:
            layers[f"drop{i}"] = nn.Dropout(dropout)
    layers["out"] = nn.Linear(widths[-1], num_classes)
    return layers


class MLP(nn.Sequential):
    """Flatten, then fully connected layers with ReLU: ``fc1``, ``fc2``, ..., ``out``."""

    def __init__(self, params: MLPParams, info: DataInfo):
        inputs = math.prod(info.input_shape)
        super().__init__(OrderedDict(
            flatten=nn.Flatten(),
            **_fully_connected([inputs, *params.hidden], info.num_classes, params.dropout)))


class ConvNet(nn.Sequential):
    """Pairs of 3x3 convolutions (``conv1``...), each pair followed by 2x2 max pooling,
    then fully connected layers (``fc1``, ``fc2``, ``out``)."""

    def __init__(self, params: ConvParams, info: DataInfo):
        channels, height, width = image_shape(info, "conv")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for pair in range(params.depth // 2):
            out = params.width * 2 ** pair
            for i in (2 * pair + 1, 2 * pair + 2):
                layers[f"conv{i}"] = nn.Conv2d(channels, out, 3, padding=1)
                layers[f"relu{i}"] = nn.ReLU()
                channels = out
            layers[f"pool{pair + 1}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"conv depth {params.depth} pools {info.input_shape} below 1x1")
        layers["flatten"] = nn.Flatten()
        layers.update(_fully_connected([channels * height * width, *params.hidden],
                                       info.num_classes, params.dropout))
        super().__init__(layers)


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``mlp``, ``conv``, ``vgg`` and ``resnet``."""
    register("mlp", MLP, MLPParams, "fully connected; default LeNet-300-100")
    register("conv", ConvNet, ConvParams, "Conv-2/4/6 of the LTH paper")
    register("vgg", VGG, VGGParams, "CIFAR VGG-11/13/16/19 with batch norm; default VGG-19")
    register("resnet", ResNet, ResNetParams, "CIFAR ResNet-(6n+2); default ResNet-20")
