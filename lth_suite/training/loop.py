"""Train and evaluate one masked network on in-memory tensors."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .acceleration import Acceleration
from .data import BatchOrder, Splits
from ..errors import Diverged
from .optimizers import FusedOptimizer
from ..pruning.masks import Mask
from ..seeding import derive_seed
from ..spec.model import Training

EVAL_BATCH = 8192
DIVERGENCE_CHECK_EVERY = 100  # iterations between reads of the losses (one sync each)


@dataclass(frozen=True)
class TrainConfig:
    """A ``Training`` section resolved to iterations for one training split."""

    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    batch_size: int
    total: int
    warmup: int
    milestones: tuple[int, ...]
    gamma: float
    eval_every: int
    per_epoch: int  # iterations in one epoch
    acceleration: Acceleration = Acceleration()

    @classmethod
    def resolve(cls, training: Training, n_train: int) -> TrainConfig:
        """Turn epochs into iterations for ``n_train`` training examples."""
        per_epoch = max(1, n_train // training.batch_size)
        schedule = training.schedule
        return cls(
            optimizer=training.optimizer, lr=training.lr, momentum=training.momentum,
            nesterov=training.nesterov, weight_decay=training.weight_decay,
            batch_size=training.batch_size,
            total=training.duration.to_iterations(per_epoch),
            warmup=schedule.warmup.to_iterations(per_epoch),
            milestones=tuple(sorted(m.to_iterations(per_epoch) for m in schedule.milestones)),
            gamma=schedule.gamma, eval_every=training.eval_every, per_epoch=per_epoch,
            acceleration=Acceleration(precision=training.precision,
                                      channels_last=training.channels_last,
                                      compile=training.compile, threads=training.threads),
        )

    def lr_at(self, iteration: int) -> float:
        """Learning rate of the step taken at ``iteration``: warmup, then milestones."""
        lr = self.lr * self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.warmup and iteration < self.warmup:
            lr *= (iteration + 1) / self.warmup
        return lr


@dataclass
class TrainResult:
    """The trained weights and the metrics of one training."""

    state: dict[str, torch.Tensor]
    history: list[dict[str, float]]  # one row per evaluation, with "iteration"
    captured: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    # Wall seconds spent in training steps ("steps") and in evaluations ("evaluation");
    # empty when unknown (restored from MLflow, population training).
    timings: dict[str, float] = field(default_factory=dict)

    def release_weights(self) -> None:
        """Drop the trained and captured weights once they are logged and no longer needed.

        The history and the timings stay: the experiment's summary reads them.
        """
        self.state, self.captured = {}, {}

    @property
    def early_stop(self) -> dict[str, float]:
        """The evaluation row with the lowest validation loss (first one on ties)."""
        return min(self.history, key=lambda row: (row["val_loss"], row["iteration"]))

    def summary(self) -> dict[str, float]:
        """Early-stop iteration and test accuracy there and at the end."""
        best, last = self.early_stop, self.history[-1]
        return {
            "early_stop_iteration": best["iteration"],
            "early_stop_val_loss": best["val_loss"],
            "early_stop_test_accuracy": best["test_accuracy"],
            "final_test_accuracy": last["test_accuracy"],
            "final_test_loss": last["test_loss"],
        }


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of the model's state dict (channels-last undone)."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for k, v in model.state_dict().items()}


def make_optimizer(model: nn.Module, config: TrainConfig) -> FusedOptimizer:
    """A fresh optimizer: momentum or Adam state would otherwise revive pruned weights."""
    return make_optimizer_for([p for p in model.parameters() if p.requires_grad], config)


def make_optimizer_for(params: list[torch.Tensor], config: TrainConfig) -> FusedOptimizer:
    """A fresh fused Adam or SGD over these tensors, at the config's base learning rate."""
    return FusedOptimizer(params, config.optimizer, config.lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             acceleration: Acceleration = Acceleration()) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over a whole split, in the training's precision."""
    was_training = model.training
    model.eval()
    memory_format = acceleration.memory_format(model)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    with acceleration.autocast(x.device):
        for start in range(0, len(y), EVAL_BATCH):
            inputs = x[start: start + EVAL_BATCH]
            if memory_format is not None and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=memory_format)
            logits = model(inputs)
            target = y[start: start + EVAL_BATCH]
            loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
            correct += (logits.argmax(dim=1) == target).sum()
    model.train(was_training)
    return loss_sum.item() / len(y), correct.item() / len(y)


class LossWindow:
    """Per-step losses kept on the device and read every few steps, not at every step.

    Reading them is also when a NaN or infinite loss is found: training stops there,
    naming the first bad iteration.
    """

    def __init__(self, size: int, device: torch.device):
        self.size = size
        self.pending: list[torch.Tensor] = []  # 0-dim tensors: appending one never syncs
        self.first = self.steps = 0
        self.total = 0.0

    def add(self, loss: torch.Tensor, iteration: int) -> None:
        """Keep one step's loss; check the window when it is full."""
        if not self.pending:
            self.first = iteration
        self.pending.append(loss.detach())
        if len(self.pending) == self.size:
            self.flush()

    def flush(self) -> None:
        """Add the window to the running total; raise ``Diverged`` on a non-finite loss."""
        if not self.pending:
            return
        values = torch.stack(self.pending).float()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise Diverged(self.first + bad, float(values[bad]))
        self.total += float(values.sum())
        self.steps += len(self.pending)
        self.pending = []

    def mean_and_reset(self) -> float | None:
        """Mean loss since the last call, or None when no step was taken."""
        self.flush()
        mean = self.total / self.steps if self.steps else None
        self.total, self.steps = 0.0, 0
        return mean


# torch.nn modules that draw random numbers in training mode (dropout inside recurrent
# and attention layers included). A module class from outside torch.nn and lth_suite may
# draw too, so only a model made of torch.nn and lth_suite modules, none of these among
# them, counts as free of randomness.
RANDOM_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.dropout._DropoutNd, nn.RReLU, nn.RNNBase, nn.MultiheadAttention,
    nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)
_KNOWN_MODULES = ("torch.nn.", "lth_suite.")


def draws_random_numbers(model: nn.Module) -> bool:
    """Whether the model's training-mode forward pass may draw from the default generators."""
    return any(isinstance(module, RANDOM_MODULES)
               or not type(module).__module__.startswith(_KNOWN_MODULES)
               for module in model.modules())


def _generators(device: torch.device) -> list[torch.Generator]:
    """The default generators that dropout and other in-model randomness draw from."""
    generators = [torch.default_generator]
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        generators.append(torch.cuda.default_generators[index])
    return generators


def train(
    model: nn.Module,
    mask: Mask,
    data: Splits,
    config: TrainConfig,
    *,
    data_seed: int,
    start_iteration: int = 0,
    constant_lr: float | None = None,
    capture_at: frozenset[int] = frozenset(),
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place from ``start_iteration`` to ``config.total``.

    Gradients of pruned weights are zeroed before each step and the mask is
    re-applied after it, so pruned weights stay exactly zero whatever the optimizer.
    Randomness inside the model (dropout) is seeded per iteration from ``data_seed``,
    so a training is reproducible and can start at any iteration; the caller's
    global RNG state is left as it was.
    """
    device = data.x_train.device
    with (torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
          config.acceleration.session(device)):
        return _train(model, mask, data, config, data_seed=data_seed,
                      start_iteration=start_iteration, constant_lr=constant_lr,
                      capture_at=capture_at, progress=progress)


def _train(
    model: nn.Module,
    mask: Mask,
    data: Splits,
    config: TrainConfig,
    *,
    data_seed: int,
    start_iteration: int,
    constant_lr: float | None,
    capture_at: frozenset[int],
    progress: Callable[[int], None] | None,
) -> TrainResult:
    started = time.perf_counter()
    device = data.x_train.device
    acceleration = config.acceleration
    forward, convert = acceleration.prepare(model)
    params = dict(model.named_parameters())
    mask.apply_(model)
    # Masks as tensors of the weights' dtype and memory format, built once; a layer that
    # keeps every weight needs no multiply (x * 1 is x, bit for bit), so the dense level 0
    # does none at all.
    masked = [(params[name], torch.empty_like(params[name]).copy_(keep))
              for name, keep in mask.items() if not bool(keep.all())]
    masked_params, keeps = [p for p, _ in masked], [k for _, k in masked]
    optimizer = make_optimizer(model, config)
    order = BatchOrder(len(data.y_train), config.batch_size, data_seed, device)
    # Seeding the generators costs a hash per step: only models that draw random
    # numbers (dropout) need it, and for them every step's randomness is reproducible.
    generators = _generators(device) if draws_random_numbers(model) else []
    # Augmentation draws from its own generator on the batch's device, reseeded per
    # iteration, so it neither disturbs dropout's stream nor depends on the start.
    augment, augment_generator = data.augment, torch.Generator(device=device)
    history: list[dict[str, float]] = []
    captured: dict[int, dict[str, torch.Tensor]] = {}
    losses = LossWindow(min(config.eval_every, DIVERGENCE_CHECK_EVERY), device)
    autocast = acceleration.autocast(device)
    evaluation = 0.0

    def record(iteration: int) -> None:
        nonlocal evaluation
        if device.type == "cuda":  # queued steps belong to the steps' time, not to this
            torch.cuda.synchronize(device)
        begun = time.perf_counter()
        row = {"iteration": float(iteration)}
        train_loss = losses.mean_and_reset()
        if train_loss is not None:
            row["train_loss"] = train_loss
        row["val_loss"], row["val_accuracy"] = evaluate(model, data.x_val, data.y_val,
                                                        acceleration)
        row["test_loss"], row["test_accuracy"] = evaluate(model, data.x_test, data.y_test,
                                                          acceleration)
        history.append(row)
        evaluation += time.perf_counter() - begun

    model.train()
    record(start_iteration)
    fixed_lr = constant_lr if constant_lr is not None else (
        config.lr if not config.warmup and not config.milestones else None)
    current_lr = math.nan
    for iteration in range(start_iteration, config.total):
        if iteration in capture_at:
            captured[iteration] = snapshot(model)
        lr = fixed_lr if fixed_lr is not None else config.lr_at(iteration)
        if lr != current_lr:
            optimizer.lr = current_lr = lr
        batch = order.indices(iteration)
        if generators:
            step_seed = derive_seed(data_seed, "step", iteration)
            for generator in generators:
                generator.manual_seed(step_seed)
        # index_select gathers the same rows as x[batch], several times faster on the CPU
        inputs = data.x_train.index_select(0, batch)
        if augment is not None:
            augment_generator.manual_seed(derive_seed(data_seed, "augment", iteration))
            inputs = augment(inputs, augment_generator)
        with autocast:
            loss = F.cross_entropy(forward(convert(inputs)), data.y_train.index_select(0, batch))
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            if masked:
                grads = [p.grad for p in masked_params]
                if any(g is None for g in grads):
                    for grad, keep in zip(grads, keeps):
                        if grad is not None:
                            grad.mul_(keep)
                else:
                    torch._foreach_mul_(grads, keeps)
            optimizer.step()
            if masked:
                torch._foreach_mul_(masked_params, keeps)
        losses.add(loss, iteration)
        done = iteration + 1
        if done % config.eval_every == 0 or done == config.total:
            record(done)
        if progress is not None:
            progress(done)
    if config.total in capture_at:
        captured[config.total] = snapshot(model)
    state = snapshot(model)
    total = time.perf_counter() - started
    return TrainResult(state=state, history=history, captured=captured,
                       timings={"steps": total - evaluation, "evaluation": evaluation})
