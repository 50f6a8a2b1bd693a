"""The ``lth_model_data_config`` hook: a model's stated input fills the dataset params a spec
left unset, and only those."""

from __future__ import annotations

import types

import pytest

from lth_suite.api import ModelDataConfig, hookimpl
from lth_suite.builtin.architectures import MLPParams
from lth_suite.lottery.experiment import dataset_params
from lth_suite.plugins.manager import load_plugins
from lth_suite.spec.loading import build_spec

STATED = ModelDataConfig(image_size=64, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
                         interpolation="bicubic", crop_fraction=0.9)


@pytest.fixture(scope="module")
def stating():
    """Built-ins plus a plugin that states a data config for the ``mlp`` architecture."""
    def lth_model_data_config(params):
        return STATED if isinstance(params, MLPParams) else None

    module = types.ModuleType("states_data_config")
    module.lth_model_data_config = hookimpl(lth_model_data_config)
    return load_plugins(extra=[module], installed=False)


def spec(plugins, tmp_path, model="mlp", **dataset):
    return build_spec({
        "experiment": {"name": "data-config"}, "model": {"name": model},
        "dataset": {"name": "imagefolder", "root": str(tmp_path), **dataset}},
        plugins.registry)


def test_unset_fields_take_the_models_data_config(stating, tmp_path):
    params, note = dataset_params(spec(stating, tmp_path), stating)
    assert (params.image_size, params.mean, params.std) == (64, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert (params.interpolation, params.crop_fraction) == ("bicubic", 0.9)
    assert note.startswith("dataset imagefolder: image_size 64, mean (0.1, 0.2, 0.3)")
    assert "from model mlp's data config" in note


def test_what_the_spec_says_wins(stating, tmp_path):
    params, note = dataset_params(spec(stating, tmp_path, image_size=32, mean=[0, 0, 0]), stating)
    assert (params.image_size, params.mean, params.std) == (32, (0, 0, 0), (0.4, 0.5, 0.6))
    assert "image_size" not in note and "mean" not in note and "std (0.4, 0.5, 0.6)" in note


def test_without_a_stated_config_the_dataset_falls_back(stating, tmp_path):
    params, note = dataset_params(spec(stating, tmp_path, model="conv"), stating)
    assert note is None and params.image_size is None
    resolved = params.resolved()
    assert (resolved.image_size, resolved.interpolation, resolved.crop_fraction) == (
        224, "bilinear", 0.875)
    assert resolved.mean == (0.5, 0.5, 0.5)


def test_a_dataset_without_those_fields_is_left_alone(stating, tiny):
    params, note = dataset_params(build_spec({**tiny, "model": {"name": "mlp"}},
                                             stating.registry), stating)
    assert note is None and not hasattr(params, "image_size")
