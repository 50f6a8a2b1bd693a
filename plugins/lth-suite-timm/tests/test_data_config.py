"""A timm model's own data config reaches image folders unless the spec says otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from lth_suite_timm import TimmParams
from lth_suite_timm.models import data_config

from lth_suite.lottery.experiment import dataset_params, prepare
from lth_suite.spec.loading import build_spec

TINY_VIT = {"arch": "vit_tiny_patch16_224",
            "kwargs": {"img_size": 16, "patch_size": 8, "depth": 1, "embed_dim": 24,
                       "num_heads": 2}}


def test_a_vits_data_config_with_its_img_size():
    config = data_config(TimmParams(**TINY_VIT))
    assert config.image_size == 16  # kwargs.img_size, not the registered 224
    assert (config.mean, config.interpolation, config.crop_fraction) == (
        (0.5, 0.5, 0.5), "bicubic", 0.9)
    convnext = data_config(TimmParams(arch="convnext_atto"))
    assert (convnext.image_size, convnext.mean) == (224, (0.485, 0.456, 0.406))


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part in ("train", "val"):
        for label in range(2):
            (tmp_path / part / f"c{label}").mkdir(parents=True)
            for i in range(6):
                pixels = rng.integers(0, 255, (20, 20, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / part / f"c{label}" / f"{i}.png")
    return tmp_path


def spec(plugins, folder, **dataset):
    return build_spec({
        "experiment": {"name": "timm-folder"}, "model": {"name": "timm", **TINY_VIT},
        "dataset": {"name": "imagefolder", "root": str(folder), "validation": 2, **dataset},
        "training": {"batch_size": 4, "duration": "1it"}}, plugins.registry)


def test_image_folders_take_the_models_size_and_normalisation(plugins, folder):
    experiment = prepare(spec(plugins, folder), plugins)
    assert experiment.data.info.input_shape == (3, 16, 16)
    assert experiment.notes == [
        "dataset imagefolder: image_size 16, mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5), "
        "interpolation bicubic, crop_fraction 0.9, from model timm's data config (set them in "
        "dataset to override)"]


def test_the_spec_overrides_the_models_data_config(plugins, folder):
    params, note = dataset_params(spec(plugins, folder, image_size=12, std=[1, 1, 1]), plugins)
    assert (params.image_size, params.std, params.mean) == (12, (1, 1, 1), (0.5, 0.5, 0.5))
    assert "image_size" not in note and "std" not in note
