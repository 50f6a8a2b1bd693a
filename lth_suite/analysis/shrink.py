"""Shrinking a ticket: a smaller dense network with the dead units and channels removed.

Shrinking works on ``nn.Sequential`` chains of ``Linear``/``Conv2d`` layers with only
``ReLU``, ``Dropout``, ``Identity``, ``MaxPool2d`` and ``Flatten`` between them (the
built-in ``mlp`` and ``conv`` architectures). In evaluation mode the shrunk network
computes the masked network's function, up to float rounding:

- a unit (or conv filter) whose incoming weights are all pruned outputs the constant
  ``ReLU(bias)``. A zero constant is removed outright. A nonzero one is folded into the
  next layer's bias and removed where that is exact: into a linear layer (also after max
  pooling and flattening, which keep a constant map constant) or into a conv without
  padding. A zero-padded conv (the built-in ``conv`` pads every conv) sees a constant map
  differently at the border, so no bias can stand in for it; instead all such constant
  units of a layer are merged into one unit that outputs a map of ones, the next conv's
  kernels for it being the others' kernels weighted by their constants (exact, since a
  conv is linear). At most one constant unit per layer stays;
- a unit whose outgoing weights are all pruned contributes nothing and is removed.

The network's inputs and outputs are never removed. Anything else (batch norm, residual
connections, pooling to a vector) is exported as the masked state dict only.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from ..pruning.masks import Mask

WEIGHTED = (nn.Linear, nn.Conv2d)
PASSTHROUGH = (nn.ReLU, nn.Dropout, nn.Identity, nn.MaxPool2d, nn.Flatten)


@dataclass
class Counts:
    """Size and cost of a network for one input example."""

    parameters: int  # every parameter
    nonzero: int  # parameters not pruned (biases and other parameters included)
    macs: int  # multiply-accumulates of the conv and linear layers, dense
    sparse_macs: int  # the same counting only kept weights


@dataclass
class LayerChange:
    """Units (or channels) of one layer before and after shrinking."""

    layer: str
    before: int
    after: int
    constant_removed: int = 0  # no incoming weights: zero, or folded into the next bias
    unused_removed: int = 0  # no outgoing weights
    constant_kept: int = 0  # no incoming weights, nonzero, folding would not be exact


@dataclass
class Shrunk:
    """A shrunk network, or the reason there is none."""

    model: nn.Sequential | None
    mask: Mask | None = None  # the ticket's mask on the shrunk network
    reason: str = ""
    layers: list[LayerChange] = field(default_factory=list)


def count(model: nn.Module, input_shape: tuple[int, ...], mask: Mask | None = None) -> Counts:
    """Parameters, and multiply-accumulates of conv/linear layers for one example."""
    kept = mask.kept() if mask is not None else {}
    pruned = sum(v.numel() - kept[k] for k, v in (mask or {}).items())
    macs = sparse = 0

    def hook(name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            nonlocal macs, sparse
            weight = module.weight
            positions = output.numel() // weight.shape[0]  # output pixels (1 for linear)
            macs += weight.numel() * positions
            sparse += kept.get(f"{name}.weight", weight.numel()) * positions
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules()
               if isinstance(module, WEIGHTED)]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=parameter.dtype if parameter is not None
                              else torch.float32))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    return Counts(total, total - pruned, macs, sparse)


def masked_state_dict(model: nn.Module, mask: Mask) -> dict[str, torch.Tensor]:
    """The model's state dict with the pruned weights set to exactly zero.

    A tied weight is in the state dict under each of its names: every one is masked, so
    whichever a reload reads last, the pruned weights stay zero.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        for alias in names.get(id(params[name]), [name]) if name in params else [name]:
            state[alias] = state[alias] * keep.to(state[alias].device, state[alias].dtype)
    return state


def unsupported(model: nn.Module) -> str:
    """Why ``shrink`` cannot handle this network; empty when it can."""
    name = type(model).__name__
    norms = [n for n, m in model.named_modules()
             if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))]
    if norms:
        return f"{name} has normalisation layers ({norms[0]}, ...), which shrinking does not fold"
    if not isinstance(model, nn.Sequential):
        return (f"{name} is not a plain nn.Sequential chain of layers (nested blocks, residual "
                "connections or global pooling cannot be shrunk here)")
    children = list(model.named_children())
    weighted = [i for i, (_, m) in enumerate(children) if isinstance(m, WEIGHTED)]
    if not weighted:
        return f"{name} has no conv or linear layer"
    for child, module in children:
        if not isinstance(module, (*WEIGHTED, *PASSTHROUGH)):
            return (f"{name}.{child} is a {type(module).__name__}: only Linear, Conv2d, ReLU, "
                    "Dropout, Identity, MaxPool2d and Flatten can be shrunk (batch norm, "
                    "average pooling and other layers cannot)")
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            return f"{name}.{child} is a grouped convolution"
        if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
            return f"{name}.{child} flattens dims {module.start_dim}..{module.end_dim}, not 1..-1"
    for a, b in zip(weighted, weighted[1:]):
        first, second = children[a][1], children[b][1]
        between = [m for _, m in children[a + 1: b]]
        flattens = sum(isinstance(m, nn.Flatten) for m in between)
        if isinstance(first, nn.Linear) and (isinstance(second, nn.Conv2d) or flattens
                                             or any(isinstance(m, nn.MaxPool2d) for m in between)):
            return f"{name}: {children[b][0]} after the linear {children[a][0]} is not supported"
        if isinstance(first, nn.Conv2d) and flattens != int(isinstance(second, nn.Linear)):
            return (f"{name}: between {children[a][0]} and {children[b][0]} the map must be "
                    "flattened once")
        if (isinstance(first, nn.Conv2d) and isinstance(second, nn.Linear)
                and second.in_features % first.out_channels):
            return f"{name}: {children[b][0]} does not take whole channels of {children[a][0]}"
    return ""


def _constant(bias: torch.Tensor, between: list[nn.Module]) -> torch.Tensor:
    """What each unit outputs when its incoming weights are all zero: act(bias).

    Max pooling and flattening keep a constant map constant; dropout is the identity in
    evaluation mode, so only ReLU changes the value.
    """
    value = bias
    for module in between:
        if isinstance(module, nn.ReLU):
            value = torch.relu(value)
    return value


def _inputs_of(weight: torch.Tensor, units: int) -> torch.Tensor:
    """A weight as (outputs, units of the previous layer, everything else)."""
    return weight.reshape(weight.shape[0], units, -1)


def shrink(model: nn.Module, mask: Mask) -> Shrunk:
    """The smallest ``nn.Sequential`` with the masked model's function that removing whole
    units and channels gives; ``Shrunk.model`` is None (with a reason) when unsupported."""
    reason = unsupported(model)
    if reason:
        return Shrunk(None, reason=reason)
    children = list(model.named_children())
    index = [i for i, (_, m) in enumerate(children) if isinstance(m, WEIGHTED)]
    names = [children[i][0] for i in index]
    modules = [children[i][1] for i in index]
    between = [[m for _, m in children[a + 1: b]] for a, b in zip(index, index[1:])]
    weights, keeps, biases = [], [], []
    for name, module in zip(names, modules):
        keep = mask.get(f"{name}.weight")
        keep = (torch.ones_like(module.weight, dtype=torch.bool, device="cpu") if keep is None
                else keep.cpu().clone())  # edited below; the caller's mask stays as it is
        keeps.append(keep)
        weights.append(module.weight.detach().cpu().to(torch.float64) * keep)
        biases.append(module.bias.detach().cpu().to(torch.float64) if module.bias is not None
                      else None)
    count_ = len(modules)
    alive = [torch.ones(m.weight.shape[0], dtype=torch.bool) for m in modules]
    changes = [LayerChange(n, m.weight.shape[0], 0) for n, m in zip(names, modules)]
    kept_constant = [torch.zeros_like(a) for a in alive]

    # Forward: units with no incoming weights left are constants; remove or fold them.
    for layer in range(count_ - 1):
        units = modules[layer].weight.shape[0]
        inputs = alive[layer - 1] if layer else None
        incoming = _inputs_of(keeps[layer], keeps[layer].shape[1])
        if inputs is not None:
            incoming = _inputs_of(keeps[layer], len(inputs))[:, inputs]
        constant = alive[layer] & ~incoming.reshape(units, -1).any(dim=1)
        bias = biases[layer]
        if bias is None:
            bias = torch.zeros(units, dtype=torch.float64)
        value = _constant(bias, between[layer])
        following = modules[layer + 1]
        exact = isinstance(following, nn.Linear) or all(p == 0 for p in _pair(following.padding))
        zero = constant & (value == 0)
        fold = constant & (value != 0) & exact
        if fold.any():
            outgoing = _inputs_of(weights[layer + 1], units).sum(dim=2)  # (outputs, units)
            shift = outgoing[:, fold] @ value[fold]
            biases[layer + 1] = shift if biases[layer + 1] is None else biases[layer + 1] + shift
        stay = constant & ~zero & ~fold
        merged = torch.zeros_like(stay)
        if int(stay.sum()) > 1:
            # The next conv is linear: the constant maps it pads add up to one map of ones
            # through the kernels summed with their values as weights, so one unit carries all.
            carrier, *others = stay.nonzero().squeeze(1).tolist()
            columns = _inputs_of(weights[layer + 1], units)  # views: edited in place
            kept_columns = _inputs_of(keeps[layer + 1], units)
            columns[:, carrier] = (columns[:, stay] * value[stay][None, :, None]).sum(dim=1)
            kept_columns[:, carrier] = kept_columns[:, stay].any(dim=1)
            bias = bias.clone()
            bias[carrier] = 1.0  # ReLU(1) = 1: the map of ones
            biases[layer] = bias
            merged[others] = True
        removed = zero | fold | merged
        alive[layer] &= ~removed
        changes[layer].constant_removed = int(removed.sum())
        kept_constant[layer] = stay & ~merged
        changes[layer].constant_kept = int(kept_constant[layer].sum())

    # Backward: units none of whose outgoing weights survive contribute nothing.
    for layer in range(count_ - 2, -1, -1):
        units = modules[layer].weight.shape[0]
        outgoing = _inputs_of(keeps[layer + 1], units)[alive[layer + 1]]
        used = outgoing.any(dim=2).any(dim=0)
        unused = alive[layer] & ~used
        changes[layer].unused_removed = int(unused.sum())
        changes[layer].constant_kept -= int((unused & kept_constant[layer]).sum())
        alive[layer] &= used

    new_modules: dict[str, nn.Module] = {}
    new_masks: dict[str, torch.Tensor] = {}
    for layer, (name, module) in enumerate(zip(names, modules)):
        rows = alive[layer]
        weight, keep = weights[layer][rows], keeps[layer][rows]
        if layer:
            previous = len(alive[layer - 1])
            weight = _inputs_of(weight, previous)[:, alive[layer - 1]].reshape(
                weight.shape[0], -1, *weight.shape[2:])
            keep = _inputs_of(keep, previous)[:, alive[layer - 1]].reshape(
                keep.shape[0], -1, *keep.shape[2:])
        bias = biases[layer][rows] if biases[layer] is not None else None
        new_modules[name] = _resized(module, weight, bias)
        if f"{name}.weight" in mask:
            new_masks[f"{name}.weight"] = keep
        changes[layer].after = int(rows.sum())
    layers = OrderedDict((child, new_modules[child] if child in new_modules
                          else copy.deepcopy(module)) for child, module in children)
    shrunk = nn.Sequential(layers)
    shrunk.eval()
    return Shrunk(shrunk, Mask(new_masks), layers=changes)


def _pair(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _resized(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A module like ``module`` holding ``weight`` and ``bias``."""
    dtype = module.weight.dtype
    has_bias = bias is not None
    if isinstance(module, nn.Linear):
        new = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=has_bias,
                                 dtype=dtype)
    else:
        new = nn.utils.skip_init(nn.Conv2d, weight.shape[1], weight.shape[0], module.kernel_size,
                                 stride=module.stride, padding=module.padding,
                                 dilation=module.dilation, bias=has_bias,
                                 padding_mode=module.padding_mode, dtype=dtype)
    with torch.no_grad():
        new.weight.copy_(weight.to(dtype))
        if has_bias:
            new.bias.copy_(bias.to(dtype))
    return new
