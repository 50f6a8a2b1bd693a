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
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .data import BatchOrder, Splits
from ..errors import Diverged
from ..pruning.masks import Mask
from ..seeding import derive_seed
from .loop import EVAL_BATCH, TrainConfig, TrainResult, make_optimizer_for

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


def train_population(template: nn.Module, members: list[Member], data: Splits,
                     config: TrainConfig, *, start_iteration: int = 0,
                     constant_lr: float | None = None,
                     progress: Callable[[int], None] | None = None) -> list[TrainResult]:
    """Train every member from ``start_iteration`` to ``config.total``, all at once."""
    with config.acceleration.session(data.x_train.device):
        return _train_population(template, members, data, config, start_iteration=start_iteration,
                                 constant_lr=constant_lr, progress=progress)


def _train_population(template: nn.Module, members: list[Member], data: Splits,
                      config: TrainConfig, *, start_iteration: int,
                      constant_lr: float | None,
                      progress: Callable[[int], None] | None) -> list[TrainResult]:
    device = data.x_train.device
    autocast = config.acceleration.autocast(device)
    models = []
    for member in members:
        model = copy.deepcopy(template)
        model.load_state_dict(member.state)
        models.append(model.to(device))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta").train()
    base_eval = copy.deepcopy(base).eval()  # dropout off while evaluating
    masks = {name: torch.stack([m.mask[name].to(device) for m in members]).to(params[name].dtype)
             for name in members[0].mask}
    with torch.no_grad():
        for name, keep in masks.items():
            params[name].mul_(keep)

    def forward(p, b, x):
        return functional_call(base, (p, b), (x,))

    def forward_eval(p, b, x):
        return functional_call(base_eval, (p, b), (x,))

    batched = vmap(forward, in_dims=(0, 0, 0), randomness="different")
    shared_input = vmap(forward_eval, in_dims=(0, 0, None), randomness="different")
    optimizer = make_optimizer_for(list(params.values()), config)
    orders = [BatchOrder(len(data.y_train), config.batch_size, m.data_seed, device) for m in members]
    generator = torch.Generator(device=device)
    histories: list[list[dict[str, float]]] = [[] for _ in members]
    captured: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in members]
    window = min(config.eval_every, 100)
    losses = torch.empty(window, len(members), device=device)
    pending = {"count": 0, "first": start_iteration, "sum": torch.zeros(len(members)), "steps": 0}

    def flush() -> None:
        count = pending["count"]
        values = losses[:count]
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            row = int((~finite).any(dim=1).nonzero()[0])
            raise Diverged(pending["first"] + row, float(values[row][~finite[row]][0]))
        pending["sum"] += values.sum(dim=0).cpu()
        pending["steps"] += count
        pending["count"] = 0

    def record(iteration: int) -> None:
        flush()
        steps = pending["steps"]
        train_loss = (pending["sum"] / steps).tolist() if steps else None
        pending["sum"], pending["steps"] = torch.zeros(len(members)), 0
        with autocast:
            val = _evaluate(shared_input, params, buffers, data.x_val, data.y_val)
            test = _evaluate(shared_input, params, buffers, data.x_test, data.y_test)
        for k, history in enumerate(histories):
            row = {"iteration": float(iteration)}
            if train_loss is not None:
                row["train_loss"] = train_loss[k]
            row["val_loss"], row["val_accuracy"] = val[k]
            row["test_loss"], row["test_accuracy"] = test[k]
            history.append(row)

    def capture(iteration: int) -> None:
        for k, member in enumerate(members):
            if iteration in member.capture_at:
                captured[k][iteration] = _member_state(params, buffers, k)

    record(start_iteration)
    current_lr = math.nan
    for iteration in range(start_iteration, config.total):
        capture(iteration)
        lr = constant_lr if constant_lr is not None else config.lr_at(iteration)
        if lr != current_lr:
            optimizer.lr = current_lr = lr
        index = torch.stack([order.indices(iteration) for order in orders])
        inputs = data.x_train[index]
        if data.augment is not None:
            inputs = torch.stack([_augmented(data, inputs[k], generator, m.data_seed, iteration)
                                  for k, m in enumerate(members)])
        with autocast:
            logits = batched(params, buffers, inputs)
            per_member = F.cross_entropy(logits.flatten(0, 1), data.y_train[index].flatten(),
                                         reduction="none").view(len(members), -1).mean(dim=1)
        optimizer.zero_grad()
        per_member.sum().backward()  # members share no parameters: gradients stay separate
        with torch.no_grad():
            for name, keep in masks.items():
                params[name].grad.mul_(keep)
            optimizer.step()
            for name, keep in masks.items():
                params[name].mul_(keep)
        if pending["count"] == 0:
            pending["first"] = iteration
        losses[pending["count"]].copy_(per_member.detach())
        pending["count"] += 1
        if pending["count"] == window:
            flush()
        done = iteration + 1
        if done % config.eval_every == 0 or done == config.total:
            record(done)
        if progress is not None:
            progress(done)
    capture(config.total)
    return [TrainResult(state=_member_state(params, buffers, k), history=histories[k],
                        captured=captured[k]) for k in range(len(members))]


def _augmented(data: Splits, batch: torch.Tensor, generator: torch.Generator, seed: int,
               iteration: int) -> torch.Tensor:
    generator.manual_seed(derive_seed(seed, "augment", iteration))
    return data.augment(batch, generator)


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
    return [(float(l) / len(y), int(c) / len(y)) for l, c in zip(loss_sum.tolist(),
                                                                 correct.tolist())]
