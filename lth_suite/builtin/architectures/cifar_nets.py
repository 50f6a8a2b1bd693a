"""VGG and ResNet for CIFAR-sized images, as in Frankle et al. and open_lth.

Both match open_lth's ``cifar_vgg_N`` and ``cifar_resnet_N[_W]`` layer for layer (and
so parameter for parameter) on 3x32x32 inputs; the pooling adapts so they also build
on smaller images. Conv and linear weights get Kaiming-normal initialisation, as
open_lth's default; batch norm keeps PyTorch's (weight 1, bias 0).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ...api import DataInfo
from . import ResNetParams, VGGParams, resnet_blocks_per_stage

# Channels per 3x3 conv, one list per stage; a 2x2 max pool follows every stage but the last.
VGG_STAGES: dict[int, list[list[int]]] = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    19: [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def image_shape(info: DataInfo, name: str) -> tuple[int, int, int]:
    """(channels, height, width) of the data, or a ValueError naming the architecture."""
    if len(info.input_shape) != 3:
        raise ValueError(f"{name} needs images (channels, height, width), got input shape "
                         f"{info.input_shape}")
    channels, height, width = info.input_shape
    return channels, height, width


def kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal weights for every conv and linear layer (open_lth's default)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)


class VGG(nn.Module):
    """open_lth's ``cifar_vgg_N``: conv(-BN)-ReLU stages, max pools, average pool, ``fc``.

    Convolutions are named after their stage and position (``features.conv3_2``). A
    max pool that would shrink the feature map below 1x1 is left out, so the network
    also builds on 28x28 or 8x8 images; on 32x32 every pool is there.
    """

    output_layer = "fc"

    def __init__(self, params: VGGParams, info: DataInfo):
        super().__init__()
        channels, height, width = image_shape(info, "vgg")
        stages = VGG_STAGES[params.depth]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for s, stage in enumerate(stages, start=1):
            for i, standard in enumerate(stage, start=1):
                out = max(1, round(standard * params.width / 64))
                # open_lth keeps the conv bias even before batch norm; kept for equal counts.
                layers[f"conv{s}_{i}"] = nn.Conv2d(channels, out, 3, padding=1)
                if params.batch_norm:
                    layers[f"bn{s}_{i}"] = nn.BatchNorm2d(out)
                layers[f"relu{s}_{i}"] = nn.ReLU()
                channels = out
            if s < len(stages) and min(height, width) >= 2:
                layers[f"pool{s}"] = nn.MaxPool2d(2)
                height, width = height // 2, width // 2
        self.features = nn.Sequential(layers)
        # On 32x32 the map is 2x2 here: the same as open_lth's AvgPool2d(2).
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, info.num_classes)
        kaiming_init(self)

    def forward(self, x):  # noqa: D102 - nn.Module contract
        return self.fc(self.flatten(self.pool(self.features(x))))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers around a shortcut; a 1x1 conv-BN one when the shape changes."""

    def __init__(self, fan_in: int, fan_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(fan_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(fan_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or fan_in != fan_out:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(fan_in, fan_out, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(fan_out)))

    def forward(self, x):  # noqa: D102 - nn.Module contract
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """open_lth's ``cifar_resnet_N_W``: conv-BN stem, 3 stages, average pool, ``fc``.

    Stages have ``width``, 2x and 4x channels; the first block of stages 2 and 3
    halves the resolution with stride 2. Names read ``stage2.block1.shortcut.conv``.
    """

    output_layer = "fc"

    def __init__(self, params: ResNetParams, info: DataInfo):
        super().__init__()
        channels = image_shape(info, "resnet")[0]
        n = resnet_blocks_per_stage(params.depth)
        self.conv = nn.Conv2d(channels, params.width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(params.width)
        self.relu = nn.ReLU()
        channels = params.width
        for s in range(3):
            out = params.width * 2 ** s
            blocks = OrderedDict()
            for b in range(n):
                blocks[f"block{b + 1}"] = BasicBlock(channels, out, 2 if s and not b else 1)
                channels = out
            self.add_module(f"stage{s + 1}", nn.Sequential(blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, info.num_classes)
        kaiming_init(self)

    def forward(self, x):  # noqa: D102 - nn.Module contract
        x = self.relu(self.bn(self.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.flatten(self.pool(x)))
