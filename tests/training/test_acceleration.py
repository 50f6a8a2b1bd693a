"""Speed settings: bf16 autocast, TF32, channels-last, torch.compile and CPU threads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lth_suite.errors import SpecError
from lth_suite.launch.execute import run_experiment
from lth_suite.lottery.experiment import prepare
from lth_suite.pruning.masks import Mask
from lth_suite.pruning.targets import random_mask_like
from lth_suite.spec.loading import build_spec, spec_hash
from lth_suite.training.acceleration import Acceleration
from lth_suite.training.population import Member, train_population
from lth_suite.training.result import snapshot
from lth_suite.training.single import train

CONV = {"name": "conv", "depth": 2, "width": 4, "hidden": [16]}
SMALL_IMAGES = {"name": "fake", "image_shape": [3, 8, 8], "train_size": 160, "test_size": 32}


def _trained(experiment, seed: int = 0, density: float = 1.0):
    model = experiment.build_model(seed)
    mask = Mask.dense(model)
    if density < 1:
        generator = torch.Generator().manual_seed(seed)
        mask = Mask({n: v & (torch.rand(v.shape, generator=generator) < density)
                     for n, v in mask.items()})
    return train(model, mask, experiment.data, experiment.config, data_seed=seed), mask


def _prepared(tiny, registry, plugins, **training):
    tiny["training"].update(duration="40it", eval_every=20, **training)
    return prepare(build_spec(tiny, registry), plugins)


def test_bf16_trains_close_to_fp32_reproducibly_and_differently(tiny, registry, plugins):
    fp32, _ = _trained(_prepared(tiny, registry, plugins))
    bf16_experiment = _prepared(tiny, registry, plugins, precision="bf16")
    bf16, _ = _trained(bf16_experiment)
    again, _ = _trained(bf16_experiment)
    assert all(torch.equal(bf16.state[k], again.state[k]) for k in bf16.state)
    assert bf16.history == again.history
    # bfloat16 keeps 8 bits of mantissa: the weights differ from fp32's, a little
    assert any(not torch.equal(bf16.state[k], fp32.state[k]) for k in fp32.state)
    for key in fp32.state:
        torch.testing.assert_close(bf16.state[key], fp32.state[key], rtol=0.05, atol=0.02)
    assert bf16.history[-1]["val_loss"] == pytest.approx(fp32.history[-1]["val_loss"], rel=0.05)
    assert all(v.dtype == torch.float32 for v in bf16.state.values())  # weights stay fp32


def test_channels_last_conv_net_matches_the_default_layout(tiny, registry, plugins):
    tiny["model"], tiny["dataset"] = CONV, SMALL_IMAGES
    plain, _ = _trained(_prepared(tiny, registry, plugins), density=0.6)
    tiny["model"], tiny["dataset"] = CONV, SMALL_IMAGES
    last_experiment = _prepared(tiny, registry, plugins, channels_last=True)
    assert last_experiment.config.acceleration.memory_format(
        last_experiment.build_model(0)) is torch.channels_last
    channels_last, mask = _trained(last_experiment, density=0.6)
    for key, tensor in plain.state.items():
        assert channels_last.state[key].is_contiguous()  # checkpoints in the default layout
        torch.testing.assert_close(channels_last.state[key], tensor, rtol=1e-4, atol=1e-5)
    for name, keep in mask.items():  # pruned weights stayed exactly zero
        assert float(channels_last.state[name][~keep].abs().sum()) == 0.0


def test_channels_last_leaves_networks_without_convolutions_alone(registry, tiny, plugins):
    experiment = _prepared(tiny, registry, plugins, channels_last=True)
    assert experiment.config.acceleration.memory_format(experiment.build_model(0)) is None


def test_compiled_training_matches_eager_training(tiny, registry, plugins):
    eager, _ = _trained(_prepared(tiny, registry, plugins), density=0.5)
    compiled, mask = _trained(_prepared(tiny, registry, plugins, compile=True), density=0.5)
    for key, tensor in eager.state.items():
        torch.testing.assert_close(compiled.state[key], tensor, rtol=1e-4, atol=1e-5)
    for name, keep in mask.items():
        assert float(compiled.state[name][~keep].abs().sum()) == 0.0


def test_threads_hold_during_training_only(tiny, registry, plugins):
    before = torch.get_num_threads()
    seen: list[int] = []
    experiment = _prepared(tiny, registry, plugins, threads=1)
    model = experiment.build_model(0)
    train(model, Mask.dense(model), experiment.data, experiment.config, data_seed=0,
          progress=lambda _: seen.append(torch.get_num_threads()))
    assert set(seen) == {1}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("precision", "mode"), [("tf32", "tf32"), ("fp32", "ieee"),
                                                 ("bf16", "ieee")])
def test_cuda_float32_mode_holds_during_a_cuda_training_only(precision, mode):
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    with Acceleration(precision=precision).session(torch.device("cuda")):
        assert (matmul.fp32_precision, conv.fp32_precision) == (mode, mode)
    assert (matmul.fp32_precision, conv.fp32_precision) == saved
    with Acceleration(precision=precision).session(torch.device("cpu")):
        assert (matmul.fp32_precision, conv.fp32_precision) == saved  # left alone on the CPU


def test_population_trains_in_bf16_close_to_sequential_bf16(tiny, registry, plugins):
    experiment = _prepared(tiny, registry, plugins, precision="bf16")
    members = []
    for k in range(2):
        model = experiment.build_model(10 + k)
        mask = random_mask_like(Mask.dense(model), torch.Generator().manual_seed(k))
        members.append(Member(snapshot(model), mask, data_seed=k))
    together = train_population(experiment.build_model(0), members, experiment.data,
                                experiment.config)
    in_fp32 = train_population(experiment.build_model(0), members, experiment.data,
                               replace(experiment.config, acceleration=Acceleration()))
    assert not torch.equal(together[0].state["fc1.weight"], in_fp32[0].state["fc1.weight"])
    for member, result in zip(members, together, strict=True):
        model = experiment.build_model(0)
        model.load_state_dict(member.state)
        alone = train(model, member.mask, experiment.data, experiment.config,
                      data_seed=member.data_seed)
        # bf16 rounds batched and single products differently: compare whole tensors
        for key, tensor in alone.state.items():
            assert float((result.state[key] - tensor).norm() / tensor.norm()) < 0.05, key
        assert result.history[-1]["val_loss"] == pytest.approx(alone.history[-1]["val_loss"],
                                                               rel=0.02)


@pytest.mark.parametrize("option", [{"compile": True}, {"channels_last": True}])
def test_population_steps_aside_for_options_it_does_not_batch(tiny, registry, plugins,
                                                              tracking_uri, notes, option):
    tiny["training"].update(population="on", duration="4it", eval_every=2, **option)
    tiny["pruning"]["levels"] = 1
    tiny["model"] = {"name": "mlp", "hidden": [8]}
    finished = run_experiment(build_spec(tiny, registry), plugins, tracking_uri, notes)
    # timings are reported by sequential trainings only
    assert all(b.result.timings for level in finished.levels for b in level.branches)
    assert notes.lines == [f"population training off: training.{next(iter(option))} "
                           "applies to networks trained one at a time"]


def test_speed_settings_are_part_of_the_spec_hash(tiny, registry):
    hashes = set()
    for training in ({}, {"precision": "bf16"}, {"channels_last": True}, {"compile": True},
                     {"threads": 1}):
        data = {**tiny, "training": {**tiny["training"], **training}}
        hashes.add(spec_hash(build_spec(data, registry)))
    assert len(hashes) == 5


@pytest.mark.parametrize(("field", "value"), [("precision", "fp16"), ("threads", 0),
                                              ("compile", "sometimes")])
def test_bad_speed_settings_name_their_field(tiny, registry, field, value):
    tiny["training"][field] = value
    with pytest.raises(SpecError, match=f"training.{field}"):
        build_spec(tiny, registry)


def test_a_compiler_failure_names_training_compile(tiny, registry, plugins, monkeypatch):
    def no_compiler(model):
        def fail(x):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore")
        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    experiment = _prepared(tiny, registry, plugins, compile=True)
    model = experiment.build_model(0)
    with pytest.raises(SpecError) as caught:
        train(model, Mask.dense(model), experiment.data, experiment.config, data_seed=0)
    assert str(caught.value) == (
        "training.compile: torch.compile failed (RuntimeError: InvalidCxxCompiler: No working "
        "C++ compiler found); set training.compile: false to train without it")


def test_a_failing_model_keeps_its_own_error_under_compile(tiny, registry, plugins,
                                                           monkeypatch):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("the model's own bug")

    monkeypatch.setattr(torch, "compile", lambda model: model)
    experiment = _prepared(tiny, registry, plugins, compile=True)
    model = experiment.build_model(0)
    model.add_module("broken", Broken())
    model.forward = lambda x: model.broken(x)
    with pytest.raises(ValueError, match="the model's own bug"):
        train(model, Mask.dense(model), experiment.data, experiment.config, data_seed=0)
