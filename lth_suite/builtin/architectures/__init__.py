"""Built-in architectures: LeNet-style MLPs, the paper's Conv-2/4/6, CIFAR VGG and ResNet,
torchvision's ImageNet ResNets.

Layers have readable names (``fc1``, ``conv3``, ``out``): they name the masks, the
``pruning.exclude`` entries and the per-layer metrics.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...api import RegisterFn, hookimpl, lazy
from .. import moved

# The networks themselves (torch) live in nets.py, cifar_nets.py and imagenet_nets.py, imported when a spec
# builds one: loading the plugins and validating a spec need only the params models here.
__getattr__ = moved(__name__, {"MLP": "nets", "ConvNet": "nets", "VGG": "cifar_nets",
                              "ResNet": "cifar_nets"})


# A layer of zero units would leave nothing to train or prune: refused when the spec is validated.
Width = Annotated[int, Field(ge=1)]


class MLPParams(BaseModel):
    """A fully connected network; the default is LeNet-300-100."""

    model_config = ConfigDict(extra="forbid")
    hidden: list[Width] = Field(default=[300, 100], description="hidden layer widths")
    dropout: float = Field(default=0.0, ge=0, lt=1)


class ConvParams(BaseModel):
    """Conv-2/4/6 of Frankle & Carbin (2019), figure 2."""

    model_config = ConfigDict(extra="forbid")
    depth: Literal[2, 4, 6] = 2
    width: int = Field(default=64, ge=1, description="channels of the first conv pair")
    hidden: list[Width] = Field(default=[256, 256], description="fully connected widths")
    dropout: float = Field(default=0.0, ge=0, lt=1)


def resnet_blocks_per_stage(depth: int) -> int:
    """n of a CIFAR ResNet of depth 6n+2, or a ValueError."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, "
                         f"...), got {depth}")
    return (depth - 2) // 6


class VGGParams(BaseModel):
    """VGG-11/13/16/19 for CIFAR: 3x3 convs, global average pooling, one linear layer."""

    model_config = ConfigDict(extra="forbid")
    depth: Literal[11, 13, 16, 19] = 19
    width: int = Field(default=64, ge=1, description="channels of the first stage; the "
                       "others scale with it (64: the standard 64-128-256-512-512)")
    batch_norm: bool = Field(default=True, description="batch norm after every conv")


class ResNetParams(BaseModel):
    """He et al. (2016)'s CIFAR ResNets: depth 6n+2, three stages of n basic blocks."""

    model_config = ConfigDict(extra="forbid")
    depth: int = Field(default=20, description="6n+2: 20, 32, 44, 56, 110, ...")
    width: int = Field(default=16, ge=1, description="channels of the first stage "
                       "(then 2x and 4x); open_lth's cifar_resnet_N_W")

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, depth: int) -> int:
        resnet_blocks_per_stage(depth)
        return depth


class ImageNetResNetParams(BaseModel):
    """torchvision's ResNet-18/34/50/101/152 with the ImageNet stem (open_lth's
    ``imagenet_resnet_N``)."""

    model_config = ConfigDict(extra="forbid")
    depth: Literal[18, 34, 50, 101, 152] = 50
    zero_init_residual: bool = Field(
        default=False, description="start each block's last batch-norm weight at 0 "
        "(Goyal et al. 2017); torchvision's and open_lth's default is off")


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``mlp``, ``conv``, ``vgg``, ``resnet`` and ``imagenet_resnet``."""
    register("mlp", lazy("lth_suite.builtin.architectures.nets:MLP"), MLPParams,
             "fully connected; default LeNet-300-100")
    register("conv", lazy("lth_suite.builtin.architectures.nets:ConvNet"), ConvParams,
             "Conv-2/4/6 of the LTH paper")
    register("vgg", lazy("lth_suite.builtin.architectures.cifar_nets:VGG"), VGGParams,
             "CIFAR VGG-11/13/16/19 with batch norm; default VGG-19")
    register("resnet", lazy("lth_suite.builtin.architectures.cifar_nets:ResNet"), ResNetParams,
             "CIFAR ResNet-(6n+2); default ResNet-20")
    register("imagenet_resnet",
             lazy("lth_suite.builtin.architectures.imagenet_nets:imagenet_resnet"),
             ImageNetResNetParams, "torchvision's ImageNet ResNet-18/34/50/101/152; "
             "default ResNet-50")
