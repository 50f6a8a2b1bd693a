"""benchmarks/bench.py measures what it says: the same data both ways, the model's own shapes.

No timing is asserted here: the speed targets live in the benchmark's own report.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


MODULES = ("workloads", "baselines", "results_file", "bench")


@pytest.fixture(scope="module")
def bench():
    """The benchmark's modules, imported as ``python benchmarks/bench.py`` imports them."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield SimpleNamespace(**{name: importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        for name in MODULES:
            sys.modules.pop(name, None)


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_both_ways_train_on_the_same_normalised_images(bench, kind):
    x, y, _ = bench.workloads.raw_data(kind, Path("no-such-folder"))
    x, y = x[:5], y[:5]
    mean, std = ((bench.workloads.MNIST_MEAN, bench.workloads.MNIST_STD) if kind == "mnist"
                 else (bench.workloads.CIFAR_MEAN, bench.workloads.CIFAR_STD))
    dataset = bench.baselines.PeerDataset(x, y, mean, std)
    ours = bench.workloads.tensors(x, kind)
    for i in range(len(y)):
        image, label = dataset[i]
        assert image.shape == ours[i].shape and label == int(y[i])
        torch.testing.assert_close(image, ours[i], rtol=1e-5, atol=1e-5)


def test_floor_runs_the_networks_own_matmul_shapes(bench):
    case = bench.workloads.CASES["lenet"]
    model, info = bench.workloads.build(case, torch.device("cpu"))
    seen = []
    real_mm = torch.mm

    def spy(a, b):
        seen.append((tuple(a.shape), tuple(b.shape)))
        return real_mm(a, b)

    run = bench.baselines.floor_runner(model, info, case.batch, torch.device("cpu"))
    torch.mm = spy
    try:
        run(1)
    finally:
        torch.mm = real_mm
    # forward, weight gradient, and input gradient past the first layer, per Linear
    assert seen == [((60, 784), (784, 300)), ((300, 60), (60, 784)),
                    ((60, 300), (300, 100)), ((100, 60), (60, 300)), ((60, 100), (100, 300)),
                    ((60, 100), (100, 10)), ((10, 60), (60, 100)), ((60, 10), (10, 100))]


def test_a_rates_job_measures_every_method_of_a_row(bench):
    job = {"case": "lenet20", "iterations": 3, "peers_iterations": 3, "repeats": 1,
           "workers": 0}
    found = bench.bench.measure_rates(job, torch.device("cpu"), Path("no-such-folder"))
    assert set(found["rates"]) == {"lth", "peers", "floor"}
    assert all(rate > 0 for rate in found["rates"].values())


def test_the_masks_keep_the_asked_density(bench):
    model, _ = bench.workloads.build(bench.workloads.CASES["lenet20"], torch.device("cpu"))
    mask = bench.workloads.mask_of(model, 0.2)
    assert abs(mask.density() - 0.2) < 0.01
    assert bench.workloads.mask_of(model, 1.0).density() == 1.0


def test_an_options_job_measures_each_variant_beside_fp32(bench):
    variants = bench.bench.option_variants("bf16,compile,tf32", "cpu")
    assert variants == ["fp32", "bf16", "compile"]  # fp32 first; no TF32 on the CPU
    # LeNet: seconds on any CPU; a conv net in bf16 takes minutes on CPUs without bf16 units
    job = {"case": "lenet", "variants": ["fp32", "bf16", "channels_last"], "iterations": 2,
           "repeats": 1}
    found = bench.bench.measure_options(job, torch.device("cpu"), Path("no-such-folder"))
    assert list(found["rates"]) == job["variants"]
    assert all(rate > 0 for rate in found["rates"].values())
    results = bench.results_file.Results(device="cpu")
    results.options = [(bench.workloads.CASES["lenet"], found)]
    table = bench.results_file.options_table(results).splitlines()
    assert len(table) == 2 + 3 and table[2].endswith("| 1.00x |")
    ratio = found["rates"]["bf16"] / found["rates"]["fp32"]
    assert table[3].endswith(f"| {ratio:.2f}x |")


def test_unknown_option_variants_are_refused(bench):
    with pytest.raises(SystemExit, match="unknown option variant"):
        bench.bench.option_variants("fp16", "cuda")


def test_each_device_kind_keeps_its_own_section_of_the_results(bench):
    merge = bench.results_file.merge_section
    cpu = merge("", "cpu", "## CPU\n\nfirst cpu run")
    both = merge(cpu, "cuda", "## CUDA (H100)\n\ngpu run")
    assert "first cpu run" in both and "gpu run" in both
    again = merge(both, "cpu", "## CPU\n\nsecond cpu run")
    assert "first cpu run" not in again and "second cpu run" in again and "gpu run" in again
    assert again.index("second cpu run") < again.index("gpu run")  # CPU first
    assert again.startswith("# lth-suite benchmark\n") and merge(again, "cpu",
                                                                 "## CPU\n\nsecond cpu run") == again


def test_gpu_script_without_a_gpu_says_so_and_exits_0(tmp_path):
    import os
    import subprocess

    results = ROOT / "benchmarks" / "RESULTS.md"
    before = results.read_bytes()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout and "nothing measured" in done.stdout
    assert results.read_bytes() == before


def test_gpu_script_asks_the_benchmark_for_rows_it_knows(bench):
    import re

    script = (ROOT / "benchmarks" / "gpu.sh").read_text()
    models = re.search(r"--models (\S+)", script).group(1).split(",")
    options = re.search(r"--options (\S+)", script).group(1).split(",")
    assert {"lenet", "resnet20", "vgg19", "population", "options"} <= set(models)
    assert set(models) <= set(bench.workloads.MODEL_CHOICES)
    assert {"fp32", "bf16", "channels_last"} <= set(options)
    assert set(options) <= set(bench.workloads.OPTION_VARIANTS)
