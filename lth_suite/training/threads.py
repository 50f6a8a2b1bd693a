"""How many CPU threads a training uses: ``training.threads: auto``.

Torch's own default is one thread per core, which is right for a large convolutional
network and badly wrong for a small one: a LeNet step is a few tens of millions of
multiply-adds, over in well under a millisecond, and OpenMP's fork, join and spinning
barriers then cost more than the arithmetic they share out. Beside other busy
processes the spinning threads also fight for the cores, so the step time collapses.

``auto`` therefore gives a training one thread per ``MACS_PER_THREAD`` multiply-adds of
work per step (forward and backward of one batch), at least one, at most the cores this
process may use divided by the trainings running at once (the ``local`` launcher's
workers), and never more than ``OMP_NUM_THREADS`` when that is set. The choice depends
only on the network, the batch size and the machine, never on the load of the moment, so
the same spec and seed give the same thread count, hence the same bits, on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when a step is measured: launchers import this module too
    import torch
    from torch import nn

# Measured on a shared 2-core EPYC (benchmarks/RESULTS.md, "thread policy"): a second
# thread made steps of 0.06-1.9G multiply-adds slower, of 3.5G faster (passive waiting).
MACS_PER_THREAD = 2_000_000_000
CONCURRENT_ENV = "LTH_SUITE_CONCURRENT_TRAININGS"  # set by launchers that train side by side


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def concurrent_trainings() -> int:
    """How many trainings run side by side on this machine: the ``local`` launcher's
    workers, or torchrun's processes on this node (``LOCAL_WORLD_SIZE``), else 1."""
    try:
        return max(1, int(os.environ.get(CONCURRENT_ENV)
                          or os.environ.get("LOCAL_WORLD_SIZE") or "1"))
    except ValueError:
        return 1


def thread_cap(cores: int | None = None, concurrent: int | None = None) -> int:
    """The most threads one training may use: its share of the cores, within OMP_NUM_THREADS."""
    share = max(1, (cores or usable_cores()) // (concurrent or concurrent_trainings()))
    try:
        omp = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        omp = 0
    return min(share, omp) if omp >= 1 else share


def step_macs(model: nn.Module, input_shape: Sequence[int], batch_size: int) -> int:
    """Multiply-adds of one training step: 3x the forward pass of a batch through the
    network's convolutions and linear layers (the backward pass is about twice the forward)."""
    import torch
    from torch import nn

    macs = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(output, torch.Tensor):
            # each output element is one dot product over the weight's input slice
            weight = module.weight
            macs += output.numel() * (weight.numel() // weight.shape[0])

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    was_training = model.training
    try:
        device = next(model.parameters()).device
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return 3 * macs * batch_size


def auto_threads(macs_per_step: int, cap: int | None = None) -> int:
    """The thread count ``auto`` chooses for a step of ``macs_per_step`` multiply-adds."""
    return max(1, min(cap or thread_cap(), macs_per_step // MACS_PER_THREAD))
