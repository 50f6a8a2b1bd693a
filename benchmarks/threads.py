#!/usr/bin/env python
"""Where a second torch thread starts to pay: one training step of growing networks,
1 thread against all cores, interleaved in one process.

    python benchmarks/threads.py                       # OpenMP's default waiting
    OMP_WAIT_POLICY=PASSIVE python benchmarks/threads.py

Networks: MLPs 784-h-h-10 (h = 300 to 4000) and two-layer conv nets on 3x32x32, batch 60,
Adam; the work of a step is counted as ``training.threads: auto`` counts it
(``lth_suite.training.threads.step_macs``). Each rate is the median of 5 rounds of about
half a second each; prints a markdown table. ``MACS_PER_THREAD`` comes from this table.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn

from lth_suite.training.threads import step_macs, usable_cores


def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def conv(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(width * 256, 10))


CASES = [(f"MLP h={h}", mlp(h), (784,)) for h in (300, 1000, 2000, 4000)] + [
    (f"conv width {w}", conv(w), (3, 32, 32)) for w in (16, 32)]


def main() -> None:
    torch.manual_seed(0)
    cores = usable_cores()
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, {cores} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"| network | multiply-adds per step | 1 thread it/s | {cores} threads it/s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, model, shape in CASES:
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = torch.randn(60, *shape), torch.randint(0, 10, (60,))

        def run(steps: int, model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer,
                x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            for _ in range(steps):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()

        torch.set_num_threads(1)
        run(5)
        began = time.perf_counter()
        run(5)
        steps = max(5, int(0.5 / ((time.perf_counter() - began) / 5)))
        rates: dict[int, list[float]] = {1: [], cores: []}
        for _ in range(5):
            for threads in rates:
                torch.set_num_threads(threads)
                began = time.perf_counter()
                run(steps)
                rates[threads].append(steps / (time.perf_counter() - began))
        one, many = (statistics.median(rates[t]) for t in rates)
        print(f"| {name} | {step_macs(model, shape, 60) / 1e6:,.0f}M | {one:.1f} | {many:.1f} | "
              f"{many / one:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
