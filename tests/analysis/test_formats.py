"""Formats of a ticket: each computes the masked dense network's function, and a wrong one
is reported, never timed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lth_suite.analysis.footprint import model_bytes
from lth_suite.analysis.formats import (
    FormatRequest,
    Representation,
    bsr,
    csr,
    dense,
    shrunk,
    two_four,
)
from lth_suite.analysis.inference import (
    OK,
    UNAVAILABLE,
    WRONG,
    MeasureSettings,
    build_formats,
    measure_formats,
)
from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.training.data import DataInfo

QUICK = MeasureSettings(batches=[1, 5], rounds=2, warmup=1, sample_seconds=0.001)


def masked(registry, arch: str, params: dict, density: float) -> tuple[nn.Module, Mask]:
    """A randomly initialised network (biases nonzero) with a random mask applied."""
    torch.manual_seed(0)
    model = registry.build("architecture", arch, params, DataInfo("t", (1, 8, 8), 10)).eval()
    generator = torch.Generator().manual_seed(1)
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            if name.endswith("bias"):
                value.uniform_(-0.5, 0.5, generator=generator)
    mask = Mask({layer.name: torch.rand(weights[layer.name].shape, generator=generator) < density
                 for layer in prunable_layers(model)})
    mask.apply_(model)
    return model, mask


NETWORKS = [("mlp", {"hidden": [32, 16]}), ("conv", {"depth": 2, "width": 8, "hidden": [16]})]


@pytest.mark.parametrize("arch, params", NETWORKS)
@pytest.mark.parametrize("build", [csr, bsr(2), shrunk], ids=["csr", "bsr", "shrunk"])
def test_each_format_computes_the_masked_network(registry, arch, params, build):
    model, mask = masked(registry, arch, params, 0.2)
    built = build(FormatRequest(model, mask, torch.device("cpu")))
    assert built.model is not None, built.reason
    x = torch.randn(7, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected, got = model(x), built.model(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()
    assert built.converted  # something was actually held in the format


def test_sparse_layers_hold_sparse_tensors_with_fewer_bytes(registry):
    model, mask = masked(registry, "mlp", {"hidden": [32, 16]}, 0.05)
    built = csr(FormatRequest(model, mask, torch.device("cpu")))
    layouts = {t.layout for t in built.model.buffers()}
    assert torch.sparse_csr in layouts
    dense_values, dense_indices = model_bytes(model)
    values, indices = model_bytes(built.model)
    assert dense_indices == 0 and indices > 0
    assert values + indices < dense_values


def test_formats_that_do_not_apply_say_why(registry):
    model, mask = masked(registry, "mlp", {"hidden": [32, 16]}, 0.2)
    request = FormatRequest(model, mask, torch.device("cpu"))
    assert "2:4" in two_four(request).reason  # a random mask has no 2:4 pattern
    assert "blocks" in bsr(7)(request).reason  # no weight divides into 7x7 blocks


def test_a_wrong_format_is_reported_and_not_timed(registry):
    model, mask = masked(registry, "mlp", {"hidden": [32, 16]}, 0.2)

    def off_by_a_bit(request: FormatRequest) -> Representation:
        broken = csr(request)
        broken.model.fc1.bias += 0.1  # a kernel that drops a term would look like this
        return broken

    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    measured = measure_formats(model, mask, x, {"dense": dense, "csr": csr, "bad": off_by_a_bit},
                               QUICK)
    bad, good = measured.result("bad"), measured.result("csr")
    assert bad.status == WRONG and not bad.seconds and "differ" in bad.reason
    assert good.status == OK and set(good.seconds) == {1, 5}
    # One thread on the CPU: speed-ups compare this thread's CPU time, load-proof.
    assert measured.clock == "cpu" and set(good.cpu_seconds) == {1, 5}
    dense_cpu = measured.result("dense").cpu_seconds[5]
    assert measured.speedup("csr", 5) == dense_cpu / good.cpu_seconds[5]
    assert "csr/b5/cpu_ms" in measured.metrics()
    assert measured.metrics()["bad/wrong"] == 1.0
    assert "bad/b1/latency_ms" not in measured.metrics()
    assert measured.speedup("dense", 1) == 1.0
    assert [r["status"] for r in measured.rows() if r["format"] == "bad"] == [WRONG]


def test_every_registered_format_is_measured_with_the_machine(registry):
    model, mask = masked(registry, "conv", {"depth": 2, "width": 8, "hidden": [16]}, 0.1)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))  # repeated to 5
    threads, tf32 = torch.get_num_threads(), torch.backends.cudnn.allow_tf32
    measured = measure_formats(model, mask, x, build_formats(registry), QUICK)
    statuses = {r.format: r.status for r in measured.results}
    assert statuses == {"dense": OK, "csr": OK, "bsr": OK, "shrunk": OK,
                        "2:4": UNAVAILABLE if not torch.cuda.is_available() else statuses["2:4"]}
    dense_result = measured.result("dense")
    assert dense_result.disk_bytes > 0 and dense_result.weight_bytes > 0
    assert measured.machine["threads"] == "1" and measured.machine["torch"] == torch.__version__
    assert measured.best(5) in statuses
    assert torch.get_num_threads() == threads  # restored after timing
    assert torch.backends.cudnn.allow_tf32 == tf32  # float32 while measuring, then restored


def two_four_ticket(registry) -> tuple[nn.Module, Mask]:
    """An mlp whose linear weights keep the 2 largest of every 4 inputs."""
    from lth_suite.pruning import nm

    torch.manual_seed(0)
    model = registry.build("architecture", "mlp", {"hidden": [128, 64]},
                           DataInfo("t", (1, 8, 8), 16)).eval()
    weights = dict(model.named_parameters())
    mask = Mask({layer.name: nm.top_n(weights[layer.name].abs(),
                                      torch.ones_like(weights[layer.name], dtype=torch.bool), 2, 4)
                 for layer in prunable_layers(model)})
    mask.apply_(model)
    return model, mask


def test_a_two_four_ticket_on_the_cpu_says_it_needs_cuda(registry):
    model, mask = two_four_ticket(registry)
    built = two_four(FormatRequest(model, mask, torch.device("cpu")))
    assert built.model is None and "CUDA" in built.reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA formats need a CUDA device")
def test_cuda_formats_match_or_say_why(registry):
    model, mask = two_four_ticket(registry)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    settings = MeasureSettings(batches=[1, 64], device="cuda", rounds=2, warmup=1,
                               sample_seconds=0.001)
    measured = measure_formats(model, mask, x, build_formats(registry), settings)
    assert measured.result("csr").status == OK and measured.machine["gpu"]
    assert measured.result("dense").peak_bytes  # CUDA's allocator measures a forward
    for result in measured.results:  # 2:4 may be refused by an older GPU, never wrong
        assert result.status != WRONG, (result.format, result.reason)


def test_a_spec_naming_an_unknown_format_is_refused_before_anything_runs(tiny, registry):
    from lth_suite.errors import SpecError
    from lth_suite.spec.loading import build_spec

    tiny["analyzers"] = [{"name": "inference", "formats": ["csr", "nope"], "batches": [1]}]
    with pytest.raises(SpecError) as refused:
        build_spec(tiny, registry)
    assert "analyzers.0.formats.1: unknown format 'nope'" in str(refused.value)
    tiny["analyzers"] = [{"name": "inference", "formats": ["2:4", "csr"]}]
    assert build_spec(tiny, registry).analyzers[0].params["formats"] == ["2:4", "csr"]


class NoisyFormatPlugin:
    """A third-party format through the hook: csr with a perturbed bias (a broken kernel)."""

    @staticmethod
    def noisy(params):
        def build(request: FormatRequest) -> Representation:
            built = csr(request)
            built.model.fc1.bias += 0.1
            return built
        return build

    from lth_suite.api import hookimpl as _hookimpl

    @_hookimpl
    def lth_register_formats(self, register) -> None:
        from lth_suite.api import NoParams

        register("noisy", self.noisy, NoParams, "csr with a broken bias")


def test_a_plugin_format_is_registered_measured_and_caught_when_wrong(registry):
    from lth_suite.plugins.manager import load_plugins

    plugins = load_plugins(extra=[NoisyFormatPlugin()], installed=False)
    assert "noisy" in plugins.registry.names("format")
    model, mask = masked(registry, "mlp", {"hidden": [32, 16]}, 0.2)
    formats = build_formats(plugins.registry, ["noisy", "csr"])
    assert list(formats) == ["dense", "noisy", "csr"]
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    measured = measure_formats(model, mask, x, formats, QUICK)
    assert measured.result("noisy").status == WRONG and measured.result("csr").status == OK


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_a_cpu_forward_peak_grows_with_what_it_allocates():
    from lth_suite.analysis.footprint import peak_forward_bytes

    def allocating(mib: int):
        return lambda: torch.ones(mib * 2 ** 18).sum()  # mib MiB of float32, then freed

    cpu = torch.device("cpu")
    small, large = (peak_forward_bytes(allocating(m), cpu) for m in (8, 64))
    # page-granular, and a few pages may come from the heap's resident free memory
    assert 7.5 * 2 ** 20 <= small < 12 * 2 ** 20
    assert 63.5 * 2 ** 20 <= large < 68 * 2 ** 20
