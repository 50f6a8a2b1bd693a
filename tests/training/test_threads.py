"""``training.threads: auto``: the work of a step, the share of the cores, the choice."""

from __future__ import annotations

import pytest
from torch import nn

from lth_suite.lottery.experiment import prepare
from lth_suite.spec.loading import build_spec
from lth_suite.training.threads import (
    CONCURRENT_ENV,
    MACS_PER_THREAD,
    auto_threads,
    step_macs,
    thread_cap,
)


def test_step_macs_counts_linear_and_conv_layers_forward_and_backward():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 30), nn.ReLU(), nn.Linear(30, 10))
    assert step_macs(mlp, (1, 8, 8), batch_size=60) == 3 * 60 * (64 * 30 + 30 * 10)
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    per_example = 4 * 8 * 8 * (3 * 3 * 3) + 4 * 8 * 8 * 10
    assert step_macs(conv, (3, 8, 8), batch_size=2) == 3 * 2 * per_example
    assert conv.training  # the probe leaves the mode as it was


def test_auto_gives_small_steps_one_thread_and_large_ones_their_share(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(CONCURRENT_ENV, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_threads(50_000_000, cap=16) == 1  # a LeNet step
    assert auto_threads(5 * MACS_PER_THREAD, cap=16) == 5
    assert auto_threads(100 * MACS_PER_THREAD, cap=16) == 16  # never above the share
    assert thread_cap(cores=16, concurrent=1) == 16
    assert thread_cap(cores=16, concurrent=4) == 4  # side by side trainings split the cores
    assert thread_cap(cores=2, concurrent=4) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's processes on this node
    assert thread_cap(cores=16) == 4
    monkeypatch.setenv(CONCURRENT_ENV, "8")  # the local launcher's workers say it first
    assert thread_cap(cores=16) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own limit wins
    assert thread_cap(cores=16, concurrent=1) == 1


@pytest.mark.parametrize(("threads", "expected"), [("auto", 1), (3, 3)])
def test_prepare_resolves_auto_to_a_thread_count(tiny, registry, plugins, threads, expected):
    tiny["training"]["threads"] = threads
    experiment = prepare(build_spec(tiny, registry), plugins)
    assert experiment.config.acceleration.threads == expected


def test_threads_must_be_positive_or_auto(tiny, registry):
    from lth_suite.errors import SpecError

    for bad in (0, "many"):
        tiny["training"]["threads"] = bad
        with pytest.raises(SpecError, match="training.threads"):
            build_spec(tiny, registry)
