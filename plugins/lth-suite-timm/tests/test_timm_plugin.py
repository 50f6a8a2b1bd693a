"""The `timm` architecture in specs and runs: building, refusing, pretrained starting points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import save_file

from lth_suite.api import DataInfo, SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.spec.loading import build_spec

VIT = {"name": "timm", "arch": "vit_tiny_patch16_224",
       "kwargs": {"img_size": 8, "patch_size": 4, "depth": 1, "embed_dim": 24, "num_heads": 2}}


@pytest.fixture
def npz(tmp_path):
    """A tiny 1-channel 8x8 image dataset."""
    generator = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=generator.random((120, 1, 8, 8), dtype=np.float32),
             y=np.arange(120) % 3)
    return path


def spec_data(npz, **model):
    return {
        "experiment": {"name": "timm", "seed": 0, "replicates": 1},
        "model": {**VIT, **model}, "dataset": {"name": "npz", "path": str(npz)},
        "training": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "batch_size": 20,
                     "duration": "6it", "eval_every": 3, "label_smoothing": 0.1,
                     "clip_grad_norm": 1.0, "schedule": {"warmup": "2it", "decay": "cosine"}},
        "pruning": {"levels": 1, "fraction": {"blocks.*.attn.*": 0.5, "head": 0.1}},
        "controls": {"reinit": True, "random_prune": False},
        "tracking": {"log_models": "none", "log_state_dicts": False},
    }


def test_classes_and_channels_come_from_the_data(plugins):
    model = plugins.registry.build("architecture", "timm", {k: v for k, v in VIT.items()
                                                             if k != "name"},
                                   DataInfo("d", (1, 8, 8), 7))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    assert model.output_layer == "head"


def test_an_unknown_model_names_close_matches(plugins):
    with pytest.raises(SpecError, match=r"model\.arch: unknown timm model 'vit_tiny_patch16_22'"
                       r"; close matches: vit_tiny_patch16_224"):
        build_spec({"model": {"name": "timm", "arch": "vit_tiny_patch16_22"}}, plugins.registry)


@pytest.mark.parametrize("kwargs, field", [({"num_classes": 3}, "num_classes"),
                                           ({"pretrained": True}, "model.pretrained")])
def test_kwargs_the_core_decides_are_refused(plugins, kwargs, field):
    with pytest.raises(SpecError, match=field):
        build_spec({"model": {"name": "timm", "arch": "resnet10t", "kwargs": kwargs}},
                   plugins.registry)


def test_a_bad_keyword_is_one_spec_error(plugins, npz):
    spec = build_spec(spec_data(npz, kwargs={"no_such_option": 1}), plugins.registry)
    with pytest.raises(SpecError, match=r"^model: cannot build 'timm'.*no_such_option"):
        prepare(spec, plugins)


def test_pretrained_start_is_level_0_and_reinit_draws_afresh(plugins, npz, tmp_path):
    spec = build_spec(spec_data(npz), plugins.registry)
    experiment = prepare(spec, plugins)
    trained = experiment.build_model(5)
    with torch.no_grad():
        for param in trained.parameters():
            param.add_(1.0)
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    spec = build_spec({**spec_data(npz), "model": {**VIT, "pretrained": str(path)}},
                      plugins.registry)
    experiment = prepare(spec, plugins)
    for seed in (0, 1):
        start = experiment.build_model(seed).state_dict()
        assert all(torch.equal(start[k], v) for k, v in trained.state_dict().items())
    own = experiment.build_model(0, pretrained=False).state_dict()
    assert not torch.equal(own["head.weight"], trained.state_dict()["head.weight"])


def test_a_checkpoint_that_does_not_fit_names_the_file_and_tensors(plugins, npz, tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"head.weight": torch.zeros(5, 5)}}, path)
    spec = build_spec({**spec_data(npz), "model": {**VIT, "pretrained": str(path)}},
                      plugins.registry)
    with pytest.raises(SpecError, match=rf"model.pretrained: {path} does not fit the model: "
                                        r"cls_token missing;.*and \d+ more"):
        prepare(spec, plugins)
    spec = build_spec({**spec_data(npz), "model": {**VIT, "pretrained": str(tmp_path / "no")}},
                      plugins.registry)
    with pytest.raises(SpecError, match=r"model.pretrained: .*no: no such file"):
        prepare(spec, plugins)


ANALYZERS = ["layer_density", "mask_similarity", "structure", "init_stats"]


def test_a_vit_ticket_runs_with_the_modern_recipe(plugins, npz, tracking_uri):
    spec = build_spec({**spec_data(npz), "analyzers": ANALYZERS}, plugins.registry)
    finished = run_experiment(spec, plugins=plugins, tracking_uri=tracking_uri)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("timm").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = next(r for r in runs if r.info.run_id == finished.parent_run_id)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    # layer_density logs metrics only; the others also write their tables
    assert logged == {f"analysis/{name}" for name in ANALYZERS if name != "layer_density"}
    ticket = finished.levels[1].of("ticket")[0].mask
    densities = ticket.layer_density()
    assert densities["blocks.0.attn.qkv.weight"] == pytest.approx(0.5, abs=0.01)
    assert densities["head.weight"] == pytest.approx(0.9, abs=0.02)
    assert densities["blocks.0.mlp.fc1.weight"] == pytest.approx(0.8, abs=0.01)
    assert "pos_embed" not in densities and "cls_token" not in densities


@pytest.mark.parametrize("sparsity", [{"pattern": "2:4"},
                                      {"dynamic": {"name": "set", "every": 2}, "density": 0.5}])
def test_n_m_and_dynamic_sparse_training_on_a_vit(plugins, npz, tracking_uri, sparsity):
    from lth_suite.pruning import nm

    data = spec_data(npz)
    data.update(sparsity=sparsity, controls={"reinit": False, "random_prune": False})
    data["pruning"] = {"levels": 1}
    finished = run_experiment(build_spec(data, plugins.registry), plugins, tracking_uri)
    ticket = finished.levels[-1].of("ticket")[0].mask
    if "pattern" in sparsity:  # one level: straight to 2:4 along each weight's inputs
        for name in ("blocks.0.attn.qkv.weight", "blocks.0.mlp.fc2.weight", "head.weight"):
            assert nm.holds(ticket[name], 2, 4), name
            assert ticket[name].float().mean() == pytest.approx(0.5), name
    else:
        level0 = finished.levels[0].of("ticket")[0].mask
        assert level0.density() == pytest.approx(0.5, abs=0.01)
        assert ticket.is_subset_of(level0)
