"""Building timm models for lth-suite: classes and channels from the data, random weights."""

from __future__ import annotations

import timm
from torch import nn

from lth_suite.api import DataInfo, ModelDataConfig

from . import TimmParams

RESIZE_MODES = ("nearest", "bilinear", "bicubic")  # what image folders resize with


def classifier_name(model: nn.Module) -> str | None:
    """The module timm names as the model's classifier, when its weights are prunable.

    ``pretrained_cfg["classifier"]`` names it (``head``, ``head.fc``, ``classifier``);
    a model that has none, or whose classifier holds no prunable weight, leaves the core's
    default (the last ``nn.Linear``).
    """
    name = getattr(model, "pretrained_cfg", {}).get("classifier")
    if not isinstance(name, str):
        return None
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return None
    return name if isinstance(getattr(module, "weight", None), nn.Parameter) else None


def build(params: TimmParams, info: DataInfo) -> nn.Module:
    """``timm.create_model(arch, **kwargs)`` with random weights, for ``info``'s data.

    Never downloads: pretrained weights come from the spec's ``model.pretrained``. A bad
    keyword argument is a ValueError (the core reports it against the spec's model).
    """
    try:
        model = timm.create_model(params.arch, pretrained=False, num_classes=info.num_classes,
                                  in_chans=info.input_shape[0], **params.kwargs)
    except TypeError as exc:  # an unknown keyword argument
        raise ValueError(f"timm model '{params.arch}': {exc}") from None
    output = classifier_name(model)
    if output is not None:
        model.output_layer = output
    return model


def data_config(params: TimmParams) -> ModelDataConfig | None:
    """What ``params.arch`` expects as input, from its registered pretrained config (no
    download); ``kwargs.img_size`` overrides the size. None for a name without one."""
    cfg = timm.models.get_pretrained_cfg(params.arch)
    if cfg is None:
        return None
    size = params.kwargs.get("img_size", cfg.input_size[1:])
    sides = {size} if isinstance(size, int) else set(size)
    return ModelDataConfig(
        image_size=sides.pop() if len(sides) == 1 else None,  # image folders crop squares
        mean=tuple(cfg.mean), std=tuple(cfg.std),
        interpolation=cfg.interpolation if cfg.interpolation in RESIZE_MODES else None,
        crop_fraction=cfg.crop_pct)
