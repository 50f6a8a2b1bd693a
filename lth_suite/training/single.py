"""One masked network trained by the loop: its step, its evaluation, and ``train``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..pruning.masks import Mask
from ..seeding import derive_seed
from .acceleration import Acceleration
from .config import TrainConfig
from .distributed import average_gradients, current
from .loop import EVAL_BATCH, Batch, Evaluated, State, StepCallback, isolated, run_loop
from .optimizers import FusedOptimizer
from .recipes import Optimizer
from .result import TrainResult, snapshot
from .streaming import AnySplits
from .tasks import CLASSIFICATION, Task, accumulate, read

FP32 = Acceleration()  # the default: float32, eager, torch's own threads


def make_optimizer(model: nn.Module, config: TrainConfig) -> Optimizer:
    """A fresh optimizer: momentum or Adam state would otherwise revive pruned weights."""
    return make_optimizer_for([p for p in model.parameters() if p.requires_grad], config)


def make_optimizer_for(params: list[torch.Tensor], config: TrainConfig) -> Optimizer:
    """A fresh optimizer over these tensors at the config's base learning rate: the spec's
    plugin's, or the fused built-in one the config names."""
    if config.build_optimizer is not None:
        return config.build_optimizer(params, config)
    return FusedOptimizer(params, config.optimizer, config.lr, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             acceleration: Acceleration = FP32) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over a whole split, in the training's precision."""
    found = evaluate_task(model, x, y, CLASSIFICATION, acceleration)
    return found["loss"], found["accuracy"]


@torch.inference_mode()
def evaluate_task(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Task,
                  acceleration: Acceleration = FP32, batch: int = EVAL_BATCH) -> dict[str, float]:
    """The task's mean loss and metrics over a whole split, in the training's precision."""
    was_training = model.training
    model.eval()
    memory_format = acceleration.memory_format(model)
    totals = None
    with acceleration.autocast(x.device):
        for start in range(0, len(y), batch):
            inputs = x[start: start + batch]
            if memory_format is not None and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=memory_format)
            totals = accumulate(totals, task.sums(model(inputs), y[start: start + batch]))
    model.train(was_training)
    return task.finish(read(totals or {}))


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


class SingleNetwork:
    """The loop's stepper for one network, trained in place (``members == 1``)."""

    members = 1

    def __init__(self, model: nn.Module, mask: Mask, config: TrainConfig, data_seed: int,
                 device: torch.device):
        self.model, self.data_seed = model, data_seed
        self.acceleration = config.acceleration
        self.forward, self.convert = self.acceleration.prepare(model)
        params = dict(model.named_parameters())
        mask.apply_(model)
        # Masks as tensors of the weights' dtype and memory format, built once; a layer that
        # keeps every weight needs no multiply (x * 1 is x, bit for bit), so the dense level 0
        # does none at all.
        masked = [(name, params[name], torch.empty_like(params[name]).copy_(keep))
                  for name, keep in mask.items() if not bool(keep.all())]
        self.masked_names = [name for name, _, _ in masked]
        self.masked_params, self.keeps = [p for _, p, _ in masked], [k for _, _, k in masked]
        self.optimizer = make_optimizer(model, config)
        self.label_smoothing, self.clip_grad_norm = config.label_smoothing, config.clip_grad_norm
        self.task = config.task
        self.eval_batch = config.task.eval_batch or EVAL_BATCH
        # Seeding the generators costs a hash per step: only models that draw random
        # numbers (dropout) need it, and for them every step's randomness is reproducible.
        self.generators = _generators(device) if draws_random_numbers(model) else []
        self.autocast = self.acceleration.autocast(device)
        self.ranks = current()  # data-parallel under torchrun: gradients averaged over ranks
        model.train()

    def set_lr(self, lr: float) -> None:
        """The learning rate of the steps that follow."""
        self.optimizer.lr = lr

    def step(self, iteration: int, batches: list[Batch]) -> torch.Tensor:
        """Forward, backward, masked gradients, optimizer step, mask re-applied."""
        (inputs, targets), = batches
        if self.generators:
            step_seed = derive_seed(self.data_seed, "step", iteration)
            for generator in self.generators:
                generator.manual_seed(step_seed)
        with self.autocast:
            loss = self.task.loss(self.forward(self.convert(inputs)), targets,
                                  label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            if self.keeps:
                grads = [p.grad for p in self.masked_params]
                if any(g is None for g in grads):
                    for grad, keep in zip(grads, self.keeps):
                        if grad is not None:
                            grad.mul_(keep)
                else:
                    torch._foreach_mul_(grads, self.keeps)
            if self.ranks is not None:  # after the masks: pruned weights get exactly zero
                loss = average_gradients([p.grad for p in self.optimizer.params
                                          if p.grad is not None], loss, self.ranks.world)
            if self.clip_grad_norm is not None:  # pruned weights' zero gradients stay zero
                nn.utils.clip_grad_norm_(self.optimizer.params, self.clip_grad_norm)
            self.optimizer.step()
            if self.keeps:
                torch._foreach_mul_(self.masked_params, self.keeps)
        return loss

    def sparse_layers(self, member: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, weight, keep) of every weight with pruned entries; ``keep`` is 1.0/0.0 in
        the weight's dtype. Dynamic sparse training changes both in place between steps."""
        return list(zip(self.masked_names, self.masked_params, self.keeps))

    def reset_state(self, name: str, positions: torch.Tensor, member: int = 0) -> None:
        """Zero the optimizer state (moments, momentum) of weight ``name`` at ``positions``."""
        self.optimizer.reset_(self.masked_params[self.masked_names.index(name)], positions)

    def dense_gradients(self, inputs: torch.Tensor, targets: torch.Tensor,
                        member: int = 0) -> list[torch.Tensor]:
        """Loss gradients of the ``sparse_layers`` weights on one batch, pruned entries
        included (the ``.grad`` the optimizer uses is left alone)."""
        with self.autocast:
            loss = self.task.loss(self.forward(self.convert(inputs)), targets)
        return list(torch.autograd.grad(loss.float(), self.masked_params))

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
        """The task's loss and metrics over a whole split, as a one-member list."""
        return [evaluate_task(self.model, x, y, self.task, self.acceleration, self.eval_batch)]

    def state(self, member: int = 0) -> State:
        """A CPU copy of the network's state dict."""
        return snapshot(self.model)


def train(
    model: nn.Module,
    mask: Mask,
    data: AnySplits,
    config: TrainConfig,
    *,
    data_seed: int,
    start_iteration: int = 0,
    constant_lr: float | None = None,
    capture_at: frozenset[int] = frozenset(),
    progress: Callable[[int], None] | None = None,
    callbacks: Sequence[StepCallback] = (),
    evaluated: Evaluated | None = None,
) -> TrainResult:
    """Train ``model`` in place from ``start_iteration`` to ``config.total``.

    Gradients of pruned weights are zeroed before each step and the mask is
    re-applied after it, so pruned weights stay exactly zero whatever the optimizer.
    Randomness inside the model (dropout) is seeded per iteration from ``data_seed``,
    so a training is reproducible and can start at any iteration; the caller's
    global RNG state is left as it was.
    """
    device = data.device
    with isolated(config, device):
        stepper = SingleNetwork(model, mask, config, data_seed, device)
        return run_loop(stepper, data, config, data_seeds=[data_seed],
                        start_iteration=start_iteration, constant_lr=constant_lr,
                        capture_at=[capture_at], progress=progress, callbacks=callbacks,
                        evaluated=evaluated)[0]
