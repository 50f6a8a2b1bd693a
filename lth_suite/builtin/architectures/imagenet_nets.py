"""torchvision's ImageNet ResNets (open_lth's ``imagenet_resnet_N``), as lth-suite networks.

The network is torchvision's own, layer for layer: a 7x7 stride-2 stem and a 3x3 max
pool, four stages of basic (18, 34) or bottleneck (50, 101, 152) blocks, global
average pooling and ``fc``. Its initialisation is torchvision's (Kaiming-normal convs,
batch norm weight 1 and bias 0), drawn from the global generator the experiment seeds.
"""

from __future__ import annotations

from torch import nn

from ...api import DataInfo
from . import ImageNetResNetParams
from .cifar_nets import image_shape

STEM_CHANNELS = 64  # torchvision's first conv, whatever the depth


def imagenet_resnet(params: ImageNetResNetParams, info: DataInfo) -> nn.Module:
    """torchvision's ResNet-``depth`` for ``info``'s channels and classes."""
    from torchvision.models import resnet

    channels = image_shape(info, "imagenet_resnet")[0]
    build = getattr(resnet, f"resnet{params.depth}")
    model = build(weights=None, num_classes=info.num_classes,
                  zero_init_residual=params.zero_init_residual)
    if channels != 3:  # grey images: the same stem, fed one channel (re-initialised as torchvision)
        model.conv1 = nn.Conv2d(channels, STEM_CHANNELS, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.output_layer = "fc"
    return model
