"""The one training loop, for one network or a population of them.

The loop owns everything a training does over time: the learning-rate schedule, the
batches, the divergence check, the evaluation points, the captures of rewind weights,
progress and the per-step callbacks. How the networks take one step (forward, backward,
masked gradients, optimizer step, mask re-applied) and how they are evaluated is the
``Stepper``'s: ``single.SingleNetwork`` or ``population.Population``.

The hot loop reads nothing back from the device per step: losses stay there and are
read every ``DIVERGENCE_CHECK_EVERY`` steps and at each evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import Diverged
from ..seeding import derive_seed
from ..tracking.names import ITERATION
from .config import TrainConfig
from .data import BatchOrder, Splits
from .distributed import current, share_of
from .result import TrainResult
from .streaming import AnySplits, StreamedSplits, evaluate_split

EVAL_BATCH = 8192  # examples per forward pass when evaluating a whole split
DIVERGENCE_CHECK_EVERY = 100  # iterations between reads of the losses (one sync each)

Batch = tuple[torch.Tensor, torch.Tensor]  # inputs and targets of one member
State = dict[str, torch.Tensor]


class Stepper(Protocol):
    """How the loop's networks take a step and are evaluated: one network, or many."""

    members: int  # networks trained together

    def set_lr(self, lr: float) -> None:
        """The learning rate of the steps that follow."""
        ...

    def step(self, iteration: int, batches: list[Batch]) -> torch.Tensor:
        """One masked optimizer step on one batch per member; the losses, shape [members].

        Gradients of pruned weights are zeroed before the optimizer step and the masks
        are re-applied after it, so pruned weights stay exactly zero whatever the optimizer.
        """
        ...

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
        """Per member: the task's mean ``loss`` and its metrics over a whole split."""
        ...

    def state(self, member: int) -> State:
        """A detached CPU copy of one member's weights and buffers."""
        ...


@dataclass
class Step:
    """What a step callback receives, after the optimizer step and the re-applied masks.

    Read it (or change the stepper's weights and masks in place, as sparse training
    does) but do not keep it: the next step reuses the stepper.
    """

    iteration: int  # the iteration just taken, counted from 0
    total: int  # the training's last iteration (exclusive)
    stepper: Stepper

    @property
    def done(self) -> int:
        """Iterations done so far, this one included."""
        return self.iteration + 1


Evaluated = Callable[[list[dict[str, float]]], None]
"""Receives each evaluation's rows (one per member) as soon as they are computed."""

StepCallback = Callable[[Step], None]
"""Called after every step, in order. It must not read values back from the device at
every step (``float(tensor)``, ``.item()``): that would synchronise the hot loop."""


class LossWindow:
    """Per-step losses of every member kept on the device, read every few steps.

    Reading them is also when a NaN or infinite loss is found: training stops there,
    naming the first bad iteration.
    """

    def __init__(self, size: int, device: torch.device, members: int = 1):
        self.size = size
        self.pending: list[torch.Tensor] = []  # on the device: appending one never syncs
        self.first = self.steps = 0
        self.totals = [0.0] * members

    def add(self, loss: torch.Tensor, iteration: int) -> None:
        """Keep one step's losses (a scalar, or one per member); check the window when full."""
        if not self.pending:
            self.first = iteration
        self.pending.append(loss.detach())
        if len(self.pending) == self.size:
            self.flush()

    def flush(self) -> None:
        """Add the window to the running totals; raise ``Diverged`` on a non-finite loss."""
        if not self.pending:
            return
        values = torch.stack(self.pending).float().reshape(len(self.pending), -1)
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            row = int((~finite).any(dim=1).nonzero()[0])
            raise Diverged(self.first + row, float(values[row][~finite[row]][0]))
        for member, total in enumerate(values.sum(dim=0).tolist()):
            self.totals[member] += total
        self.steps += len(self.pending)
        self.pending = []

    def mean_and_reset(self) -> list[float] | None:
        """Each member's mean loss since the last call, or None when no step was taken."""
        self.flush()
        means = [total / self.steps for total in self.totals] if self.steps else None
        self.totals, self.steps = [0.0] * len(self.totals), 0
        return means


class Batches:
    """Each member's batch of any iteration: its own data order and augmentation."""

    def __init__(self, data: Splits, batch_size: int, data_seeds: Sequence[int]):
        device = data.x_train.device
        self.data, self.seeds = data, list(data_seeds)
        self.orders = [BatchOrder(len(data.y_train), batch_size, seed, device)
                       for seed in self.seeds]
        # Augmentation draws from its own generator on the batch's device, reseeded per
        # iteration, so it neither disturbs dropout's stream nor depends on the start.
        self.generator = torch.Generator(device=device)

    def __call__(self, iteration: int) -> list[Batch]:
        """One (inputs, targets) pair per member."""
        x, y, augment = self.data.x_train, self.data.y_train, self.data.augment
        found = []
        for order, seed in zip(self.orders, self.seeds):
            index = order.indices(iteration)
            # index_select gathers the same rows as x[index], several times faster on the CPU
            inputs = x.index_select(0, index)
            if augment is not None:
                self.generator.manual_seed(derive_seed(seed, "augment", iteration))
                inputs = augment(inputs, self.generator)
            found.append((inputs, y.index_select(0, index)))
        return found


class Captures:
    """The weights of chosen iterations, per member (the rewind point of late rewinding)."""

    def __init__(self, stepper: Stepper, capture_at: Sequence[frozenset[int]]):
        self.stepper, self.capture_at = stepper, capture_at
        self.captured: list[dict[int, State]] = [{} for _ in capture_at]

    def at(self, iteration: int) -> None:
        """Capture the members that want the weights as they are after ``iteration`` steps."""
        for member, wanted in enumerate(self.capture_at):
            if iteration in wanted:
                self.captured[member][iteration] = self.stepper.state(member)

    def __call__(self, step: Step) -> None:
        """As a step callback: capture after each step."""
        self.at(step.done)


@contextmanager
def isolated(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Around one training: the caller's RNG state is restored after it, and so are the
    process-wide switches (threads, TF32) its acceleration sets."""
    with (torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
          config.acceleration.session(device)):
        yield


def run_loop(stepper: Stepper, data: AnySplits, config: TrainConfig, *,
             data_seeds: Sequence[int], start_iteration: int = 0,
             constant_lr: float | None = None,
             capture_at: Sequence[frozenset[int]] | None = None,
             progress: Callable[[int], None] | None = None,
             callbacks: Sequence[StepCallback] = (),
             evaluated: Evaluated | None = None) -> list[TrainResult]:
    """Train every member from ``start_iteration`` to ``config.total``; one result each.

    ``constant_lr`` replaces the schedule (fine-tuning). ``capture_at`` names, per member,
    the iterations whose weights to keep; ``progress`` receives the iterations done;
    ``evaluated`` receives each evaluation's rows, one per member, as they are computed.
    """
    started = time.perf_counter()
    device = data.device
    members = stepper.members
    ranks = current()  # data-parallel: this process trains on its share of every batch
    shard = ranks.shard if ranks else (0, 1)
    if isinstance(data, StreamedSplits):
        batches = data.batches(config.batch_size, data_seeds, config.total, shard)
    else:
        batches = Batches(data, config.batch_size, data_seeds)
        batches = share_of(batches, ranks) if ranks else batches
    captures = Captures(stepper, capture_at or [frozenset()] * members)
    losses = LossWindow(min(config.eval_every, DIVERGENCE_CHECK_EVERY), device, members)
    histories: list[list[dict[str, float]]] = [[] for _ in range(members)]
    evaluation = reporting = 0.0

    def record(iteration: int) -> None:
        nonlocal evaluation, reporting
        if device.type == "cuda":  # queued steps belong to the steps' time, not to this
            torch.cuda.synchronize(device)
        begun = time.perf_counter()
        train_loss = losses.mean_and_reset()
        val = evaluate_split(stepper, data, "validation")
        test = evaluate_split(stepper, data, "test")
        for member, history in enumerate(histories):
            row = {ITERATION: float(iteration)}
            if train_loss is not None:
                row["train_loss"] = train_loss[member]
            for split, found in (("val", val[member]), ("test", test[member])):
                row.update({f"{split}_{metric}": value for metric, value in found.items()})
            history.append(row)
        reported = time.perf_counter()
        evaluation += reported - begun
        if evaluated is not None:  # live logging: neither a step's time nor an evaluation's
            evaluated([history[-1] for history in histories])
            reporting += time.perf_counter() - reported

    every_step: list[StepCallback] = [captures, *callbacks] if any(capture_at or ()) \
        else list(callbacks)
    record(start_iteration)
    captures.at(start_iteration)
    fixed_lr = constant_lr if constant_lr is not None else (
        config.lr if not config.warmup and not config.milestones else None)
    current_lr = math.nan
    for iteration in range(start_iteration, config.total):
        lr = fixed_lr if fixed_lr is not None else config.lr_at(iteration)
        if lr != current_lr:
            stepper.set_lr(lr)
            current_lr = lr
        losses.add(stepper.step(iteration, batches(iteration)), iteration)
        done = iteration + 1
        if done % config.eval_every == 0 or done == config.total:
            record(done)
        if every_step:  # no Step object per iteration unless someone reads it
            step = Step(iteration, config.total, stepper)
            for callback in every_step:
                callback(step)
        if progress is not None:
            progress(done)
    states = [stepper.state(member) for member in range(members)]
    seconds = time.perf_counter() - started
    # Population members share every second: no time of their own to report.
    timings = ({"steps": seconds - evaluation - reporting, "evaluation": evaluation}
               if members == 1 else {})
    return [TrainResult(state=states[m], history=histories[m], captured=captures.captured[m],
                        timings=dict(timings)) for m in range(members)]
