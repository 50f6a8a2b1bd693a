"""LeNet-style MLPs and the Conv-2/4/6 of Frankle & Carbin (2019), registered by
the package's hook; VGG and ResNet live in ``cifar_nets.py``."""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from ...api import DataInfo
from . import ConvParams, MLPParams
from .cifar_nets import image_shape


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
