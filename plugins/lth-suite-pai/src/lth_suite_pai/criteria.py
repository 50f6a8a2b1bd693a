"""SNIP, GraSP and SynFlow as lth-suite pruning criteria.

Each criterion scores the currently kept weights of a *copy* of the request's network
and keeps the highest scores of each group with ``lth_suite.api.keep_top``: exactly
the requested count per group, never a weight that is already pruned, and
``request.model`` is left untouched.

``at: current`` scores the weights the request carries (the trained ticket of the
source level); ``at: init`` scores the network at ``request.init_state`` (iteration 0).
With ``pruning.strategy: oneshot`` and ``rewind: init``, ``at: init`` is pruning at
initialisation: the baselines that lottery-ticket papers compare tickets against.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth_suite.api import Criterion, Group, Mask, PruneRequest, keep_top

from .params import GraspParams, SnipParams, SynflowParams

# --- shared helpers -------------------------------------------------------------------------

def _network(request: PruneRequest, at: str) -> nn.Module:
    """A copy of the request's network at the asked weights, its pruned weights zeroed."""
    model = copy.deepcopy(request.model)
    if at == "init":
        if not request.init_state:
            raise ValueError("at: init needs the request's init_state (the weights at step 0)")
        model.load_state_dict(request.init_state)
    for param in model.parameters():
        param.grad = None
        param.requires_grad_(True)
    request.mask.apply_(model)
    return model


def _weights(model: nn.Module, names: Sequence[str]) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    return [params[name] for name in names]


def _train_mode_without_dropout(model: nn.Module) -> None:
    """Batch norm on batch statistics, as when training; dropout off, so scores are exact."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()


def _batches(request: PruneRequest, params: SnipParams,
             criterion: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``params.batches`` training batches drawn with the request's seeded generator."""
    data = request.data
    if data is None:
        raise ValueError(f"{criterion} needs training data, but the request has none")
    order = torch.randperm(len(data.y_train), generator=request.generator)
    order = order[: params.batches * params.batch_size].to(data.x_train.device)
    return [(data.x_train[index], data.y_train[index]) for index in order.split(params.batch_size)]


def _grad(output: torch.Tensor, weights: list[torch.Tensor],
          create_graph: bool = False) -> list[torch.Tensor]:
    """d output / d weights; a weight the output does not depend on gets zeros."""
    grads = torch.autograd.grad(output, weights, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]


def _loss_gradient(model: nn.Module, weights: list[torch.Tensor],
                   batches: list[tuple[torch.Tensor, torch.Tensor]],
                   temperature: float = 1.0) -> list[torch.Tensor]:
    """The gradient of the cross-entropy loss, summed over the batches, without a graph."""
    total = [torch.zeros_like(w) for w in weights]
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y)
        for acc, grad in zip(total, _grad(loss, weights)):
            acc += grad.detach()
    return total


# --- SNIP -----------------------------------------------------------------------------------

def snip(params: SnipParams) -> Criterion:
    """SNIP (Lee et al. 2019): keep the weights of largest connection sensitivity |g * w|.

    ``g`` is the gradient of the cross-entropy loss on ``batches`` training batches,
    drawn from ``request.data`` with the request's generator.
    """

    def criterion(request: PruneRequest) -> Mask:
        with torch.enable_grad():
            model = _network(request, params.at)
            _train_mode_without_dropout(model)
            names = list(request.mask)
            weights = _weights(model, names)
            grads = _loss_gradient(model, weights, _batches(request, params, "snip"))
            scores = {n: (g * w.detach()).abs() for n, g, w in zip(names, grads, weights)}
        return keep_top(scores, request.mask, request.groups)

    criterion.uses_data = True  # type: ignore[attr-defined]  # the random_labels control reads it
    return criterion


# --- GraSP ----------------------------------------------------------------------------------

def grasp(params: GraspParams) -> Criterion:
    """GraSP (Wang et al. 2020): keep the weights that preserve gradient flow.

    The paper scores ``S(-w) = -w * Hg`` (H the Hessian and g the gradient of the loss)
    and removes the weights with the *largest* S: removing them reduces the gradient
    norm least (or increases it). Equivalently this keeps the largest ``w * Hg = -S``,
    which is the score handed to ``keep_top``. As in the authors' code, the logits are
    divided by ``temperature`` and Hg is the gradient of ``stop_grad(g) . g``.
    """

    def criterion(request: PruneRequest) -> Mask:
        with torch.enable_grad():
            model = _network(request, params.at)
            _train_mode_without_dropout(model)
            names = list(request.mask)
            weights = _weights(model, names)
            batches = _batches(request, params, "grasp")
            g = _loss_gradient(model, weights, batches, params.temperature)
            hg = [torch.zeros_like(w) for w in weights]
            for x, y in batches:
                loss = F.cross_entropy(model(x) / params.temperature, y)
                grad_f = _grad(loss, weights, create_graph=True)
                z = sum((gi * fi).sum() for gi, fi in zip(g, grad_f))
                if not z.requires_grad:  # the loss is flat in every weight: Hg is zero
                    continue
                for acc, h in zip(hg, _grad(z, weights)):
                    acc += h.detach()
            scores = {n: w.detach() * h for n, w, h in zip(names, weights, hg)}
        return keep_top(scores, request.mask, request.groups)

    criterion.uses_data = True  # type: ignore[attr-defined]  # the random_labels control reads it
    return criterion


# --- SynFlow --------------------------------------------------------------------------------

def _input_shape(request: PruneRequest, model: nn.Module) -> tuple[int, ...]:
    """One example's shape: from the data, or, without data, from a leading linear layer."""
    if request.data is not None:
        return tuple(request.data.info.input_shape)
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ValueError("synflow: the request has no data, and the input shape of a network "
                     "that does not start with a linear layer cannot be inferred")


def synflow_schedule(mask: Mask, groups: list[Group], iterations: int) -> list[list[Group]]:
    """Per iteration, the groups with intermediate targets, exponentially down to the final.

    A group holding ``c0`` kept weights that must end at ``t`` keeps
    ``round(c0 * (t / c0) ** (k / n))`` after iteration k of n; the last is exactly ``t``.
    """
    kept = mask.kept()
    schedule = []
    for k in range(1, iterations + 1):
        step = []
        for names, keep in groups:
            start = sum(kept[n] for n in names)
            if k == iterations or start == 0 or keep >= start:
                count = keep
            else:
                count = max(keep, round(start * (keep / start) ** (k / iterations)))
            step.append((list(names), int(count)))
        schedule.append(step)
    return schedule


def synflow(params: SynflowParams) -> Criterion:
    """SynFlow (Tanaka et al. 2020): iterative synaptic flow pruning, without data.

    Every parameter and buffer becomes its absolute value, the input is all ones
    (in double precision where the device supports it), R is the sum of the output,
    and each kept weight scores ``|w * dR/dw|``. Pruning repeats ``iterations`` times
    on an exponential schedule of targets, rescoring the masked network each time,
    and ends exactly at the request's counts. Batch norm uses its running statistics.
    """

    def criterion(request: PruneRequest) -> Mask:
        with torch.enable_grad():
            model = _network(request, params.at)
            model.eval()
            device = next(model.parameters()).device
            dtype = torch.float32 if device.type == "mps" else torch.float64
            model.to(dtype)
            with torch.no_grad():
                for tensor in model.state_dict().values():  # linearise the network
                    if tensor.is_floating_point():
                        tensor.abs_()
            names = list(request.mask)
            weights = _weights(model, names)
            magnitudes = [w.detach().clone() for w in weights]
            ones = torch.ones((1, *_input_shape(request, model)), dtype=dtype, device=device)
            mask = request.mask
            for groups in synflow_schedule(request.mask, request.groups, params.iterations):
                with torch.no_grad():
                    for name, w, magnitude in zip(names, weights, magnitudes):
                        w.copy_(magnitude * mask[name].to(device=device, dtype=dtype))
                flow = model(ones).sum()
                grads = _grad(flow, weights)
                scores = {n: (g * w.detach()).abs() for n, g, w in zip(names, grads, weights)}
                mask = keep_top(scores, mask, groups)
        return mask

    return criterion
