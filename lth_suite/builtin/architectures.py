"""Built-in architectures: LeNet-style MLPs and the paper's Conv-2/4/6."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..data import DataInfo
from ..hookspecs import hookimpl
from ..registry import RegisterFn


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


def _classifier(widths: list[int], num_classes: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(widths[-1], num_classes))
    return layers


class MLP(nn.Sequential):
    """Flatten, then fully connected layers with ReLU."""

    def __init__(self, params: MLPParams, info: DataInfo):
        inputs = math.prod(info.input_shape)
        super().__init__(nn.Flatten(), *_classifier([inputs, *params.hidden],
                                                     info.num_classes, params.dropout))


class ConvNet(nn.Module):
    """Pairs of 3x3 convolutions, each pair followed by 2x2 max pooling, then an MLP."""

    def __init__(self, params: ConvParams, info: DataInfo):
        super().__init__()
        if len(info.input_shape) != 3:
            raise ValueError(f"conv needs images (channels, height, width), got input shape "
                             f"{info.input_shape}")
        channels, height, width = info.input_shape
        blocks: list[nn.Module] = []
        for pair in range(params.depth // 2):
            out = params.width * 2 ** pair
            blocks += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels, height, width = out, height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"conv depth {params.depth} pools {info.input_shape} below 1x1")
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Flatten(), *_classifier(
            [channels * height * width, *params.hidden], info.num_classes, params.dropout))

    def forward(self, x):  # noqa: D102 - nn.Module contract
        return self.classifier(self.features(x))


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``mlp`` and ``conv``."""
    register("mlp", MLP, MLPParams, "fully connected; default LeNet-300-100")
    register("conv", ConvNet, ConvParams, "Conv-2/4/6 of the LTH paper")
