"""Population training: several networks of one architecture in one vectorised pass.

The members' parameters are stacked (``torch.func.stack_module_state``) and the forward
pass is ``vmap``-ed over them, so K small networks cost about one batched network. Adam
and SGD act elementwise, so one optimizer over the stacked tensors is K independent
optimizers. Each member keeps its own initialisation, mask, data order and optimizer
state; without dropout the result equals training the members one by one, to float
tolerance (batched matrix products round differently).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..pruning.masks import Mask
from .config import TrainConfig
from .data import Splits
from .loop import EVAL_BATCH, Batch, Evaluated, State, StepCallback, isolated, run_loop
from .result import TrainResult
from .single import make_optimizer_for

UNBATCHABLE = (nn.modules.batchnorm._BatchNorm,)


def why_not_batchable(model: nn.Module) -> str | None:
    """The reason a model cannot be trained as a population, or None."""
    for name, module in model.named_modules():
        if isinstance(module, UNBATCHABLE):
            return f"{type(module).__name__} '{name}' keeps running statistics that vmap cannot batch"
    return None


@dataclass
class Member:
    """One network of a population: its starting weights, mask and data order."""

    state: dict[str, torch.Tensor]
    mask: Mask
    data_seed: int
    capture_at: frozenset[int] = frozenset()


class Population:
    """The loop's stepper for a population: K networks stacked, one vmapped pass."""

    def __init__(self, template: nn.Module, members: list[Member], config: TrainConfig,
                 device: torch.device):
        self.members = len(members)
        self.autocast = config.acceleration.autocast(device)
        models = []
        for member in members:
            model = copy.deepcopy(template)
            model.load_state_dict(member.state)
            models.append(model.to(device))
        self.params, self.buffers = stack_module_state(models)
        self.base = base = copy.deepcopy(models[0]).to("meta").train()
        base_eval = copy.deepcopy(base).eval()  # dropout off while evaluating
        self.masks = {name: torch.stack([m.mask[name].to(device) for m in members])
                      .to(self.params[name].dtype) for name in members[0].mask}
        with torch.no_grad():
            for name, keep in self.masks.items():
                self.params[name].mul_(keep)

        def forward(p, b, x):
            return functional_call(base, (p, b), (x,))

        def forward_eval(p, b, x):
            return functional_call(base_eval, (p, b), (x,))

        self.batched = vmap(forward, in_dims=(0, 0, 0), randomness="different")
        self.shared_input = vmap(forward_eval, in_dims=(0, 0, None), randomness="different")
        self.optimizer = make_optimizer_for(list(self.params.values()), config)
        self.label_smoothing = config.label_smoothing

    def set_lr(self, lr: float) -> None:
        """The learning rate of the steps that follow, for every member."""
        self.optimizer.lr = lr

    def step(self, iteration: int, batches: list[Batch]) -> torch.Tensor:
        """Every member's step in one pass; their losses, shape [members]."""
        inputs = torch.stack([inputs for inputs, _ in batches])
        targets = torch.stack([targets for _, targets in batches])
        with self.autocast:
            logits = self.batched(self.params, self.buffers, inputs)
            per_member = F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                         reduction="none", label_smoothing=self.label_smoothing,
                                         ).view(self.members, -1).mean(dim=1)
        self.optimizer.zero_grad()
        per_member.sum().backward()  # members share no parameters: gradients stay separate
        with torch.no_grad():
            for name, keep in self.masks.items():
                self.params[name].grad.mul_(keep)
            self.optimizer.step()
            for name, keep in self.masks.items():
                self.params[name].mul_(keep)
        return per_member

    def sparse_layers(self, member: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """One member's (name, weight, keep) per masked weight: views into the stacked
        tensors, which dynamic sparse training changes in place between steps."""
        return [(name, self.params[name][member], keep[member])
                for name, keep in self.masks.items()]

    def reset_state(self, name: str, positions: torch.Tensor, member: int = 0) -> None:
        """Zero one member's optimizer state of weight ``name`` at ``positions``."""
        stacked = self.params[name]
        everywhere = torch.zeros(stacked.shape, dtype=torch.bool, device=stacked.device)
        everywhere[member] = positions
        self.optimizer.reset_(stacked, everywhere)

    def dense_gradients(self, inputs: torch.Tensor, targets: torch.Tensor,
                        member: int = 0) -> list[torch.Tensor]:
        """One member's loss gradients of its ``sparse_layers`` weights on one batch,
        pruned entries included (the optimizer's ``.grad`` is left alone)."""
        params = {name: tensor[member] for name, tensor in self.params.items()}
        buffers = {name: tensor[member] for name, tensor in self.buffers.items()}
        with self.autocast:
            logits = functional_call(self.base, (params, buffers), (inputs,))
            loss = F.cross_entropy(logits.float(), targets)
        names = list(self.masks)
        grads = torch.autograd.grad(loss, [self.params[name] for name in names])
        return [grad[member] for grad in grads]

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
        """Per member: loss and accuracy over a whole split, the split read once."""
        with self.autocast:
            found = _evaluate(self.shared_input, self.params, self.buffers, x, y)
        return [{"loss": loss, "accuracy": accuracy} for loss, accuracy in found]

    def state(self, member: int) -> State:
        """A CPU copy of one member's parameters and buffers."""
        return _member_state(self.params, self.buffers, member)


def train_population(template: nn.Module, members: list[Member], data: Splits,
                     config: TrainConfig, *, start_iteration: int = 0,
                     constant_lr: float | None = None,
                     progress: Callable[[int], None] | None = None,
                     callbacks: Sequence[StepCallback] = (),
                     evaluated: Evaluated | None = None) -> list[TrainResult]:
    """Train every member from ``start_iteration`` to ``config.total``, all at once."""
    device = data.device
    with isolated(config, device):
        stepper = Population(template, members, config, device)
        return run_loop(stepper, data, config, data_seeds=[m.data_seed for m in members],
                        start_iteration=start_iteration, constant_lr=constant_lr,
                        capture_at=[m.capture_at for m in members], progress=progress,
                        callbacks=callbacks, evaluated=evaluated)


def _member_state(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                  k: int) -> dict[str, torch.Tensor]:
    return {name: tensor[k].detach().to("cpu", copy=True)
            for name, tensor in {**params, **buffers}.items()}


@torch.inference_mode()
def _evaluate(shared_input, params, buffers, x: torch.Tensor,
              y: torch.Tensor) -> list[tuple[float, float]]:
    """Per member: mean cross-entropy and accuracy over a whole split."""
    k = next(iter(params.values())).shape[0]
    loss_sum = torch.zeros(k, device=x.device)
    correct = torch.zeros(k, device=x.device, dtype=torch.long)
    for start in range(0, len(y), EVAL_BATCH):
        logits = shared_input(params, buffers, x[start: start + EVAL_BATCH])
        target = y[start: start + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits.flatten(0, 1).float(), target.repeat(k),
                                    reduction="none").view(k, -1).sum(dim=1)
        correct += (logits.argmax(dim=2) == target).sum(dim=1)
    return [(float(loss) / len(y), int(hits) / len(y))
            for loss, hits in zip(loss_sum.tolist(), correct.tolist())]
