"""benchmarks/bench.py measures what it says: the same data both ways, the model's own shapes.

No timing is asserted here: the speed targets live in the benchmark's own report.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("lth_bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_both_ways_train_on_the_same_normalised_images(bench, kind):
    x, y, _ = bench._raw_data(kind, Path("no-such-folder"))
    x, y = x[:5], y[:5]
    mean, std = ((bench.MNIST_MEAN, bench.MNIST_STD) if kind == "mnist"
                 else (bench.CIFAR_MEAN, bench.CIFAR_STD))
    dataset = bench.PeerDataset(x, y, mean, std)
    ours = bench._tensors(x, kind)
    for i in range(len(y)):
        image, label = dataset[i]
        assert image.shape == ours[i].shape and label == int(y[i])
        torch.testing.assert_close(image, ours[i], rtol=1e-5, atol=1e-5)


def test_floor_runs_the_networks_own_matmul_shapes(bench):
    case = bench.CASES["lenet"]
    model, info = bench._build(case, torch.device("cpu"))
    seen = []
    real_mm = torch.mm

    def spy(a, b):
        seen.append((tuple(a.shape), tuple(b.shape)))
        return real_mm(a, b)

    run = bench.floor_runner(model, info, case.batch, torch.device("cpu"))
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
    found = bench.measure_rates(job, torch.device("cpu"), Path("no-such-folder"))
    assert set(found["rates"]) == {"lth", "peers", "floor"}
    assert all(rate > 0 for rate in found["rates"].values())


def test_the_masks_keep_the_asked_density(bench):
    model, _ = bench._build(bench.CASES["lenet20"], torch.device("cpu"))
    mask = bench._mask(model, 0.2)
    assert abs(mask.density() - 0.2) < 0.01
    assert bench._mask(model, 1.0).density() == 1.0
