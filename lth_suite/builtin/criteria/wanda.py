"""``wanda``: |W| times the norm of the weight's input over calibration batches (Sun et al. 2023).

A weight ``W[o, i]`` of a linear layer scores ``|W[o, i]| * ||X[:, i]||_2``, ``X`` being
every input vector the layer saw on the calibration batches (each token of each sequence
is one). Within one layer the weights compete per output row, as in the paper: each row
keeps its share of the layer's kept weights (in proportion to what it keeps now). A group
of several layers (global scope) and weights that are not matrices (convolutions, named
tensors) are ranked by the same score over the whole group, with a norm of 1 where no
input was seen (and everywhere when the request carries no in-memory data).
"""

from __future__ import annotations

import torch
from torch import nn

from ...api import Mask, PruneRequest, keep_top, top_positions
from . import WandaParams


def input_norms(model: nn.Module, names: list[str], data: object,
                params: WandaParams) -> dict[str, torch.Tensor]:
    """Per weight matrix: the L2 norm of each input feature over the calibration batches."""
    params_by_id = {id(p): name for name, p in model.named_parameters() if name in names}
    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        name = params_by_id.get(id(weight)) if isinstance(weight, nn.Parameter) else None
        if name is None or weight.dim() != 2:
            continue

        def record(module: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
            x = inputs[0].detach().float()
            squares = x.reshape(-1, x.shape[-1]).pow(2).sum(dim=0)
            sums[name] = sums[name] + squares if name in sums else squares

        hooks.append(module.register_forward_hook(record))
    x_train = getattr(data, "x_train", None)
    if x_train is None:  # no data in the request (an experiment always gives its splits)
        for hook in hooks:
            hook.remove()
        return {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            count = min(len(x_train), params.batches * params.batch_size)
            for start in range(0, count, params.batch_size):
                model(x_train[start: min(start + params.batch_size, count)])
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return {name: total.sqrt() for name, total in sums.items()}


def row_quotas(kept_per_row: torch.Tensor, keep: int) -> torch.Tensor:
    """Each row's share of ``keep``, in proportion to what it keeps now (largest remainders)."""
    total = int(kept_per_row.sum())
    if total == 0:
        return torch.zeros_like(kept_per_row)
    exact = kept_per_row.double() * keep / total
    quotas = exact.floor().long()
    left = keep - int(quotas.sum())
    room = quotas < kept_per_row
    remainders = torch.where(room, exact - quotas, torch.tensor(-1.0, dtype=torch.float64))
    quotas[top_positions(remainders, left)] += 1
    return quotas


def per_row(scores: torch.Tensor, kept: torch.Tensor, keep: int, out_axis: int) -> torch.Tensor:
    """The ``keep`` best kept weights of a matrix, chosen row by row along ``out_axis``."""
    s = scores.movedim(out_axis, 0).double().cpu()
    k = kept.movedim(out_axis, 0).cpu()
    quotas = row_quotas(k.sum(dim=1), keep)
    chosen = torch.zeros_like(k)
    for row in range(s.shape[0]):
        candidates = k[row].nonzero().squeeze(1)
        values = torch.nan_to_num(s[row, candidates], nan=-torch.inf)
        chosen[row, candidates[top_positions(values, int(quotas[row]))]] = True
    return chosen.movedim(0, out_axis).to(kept.device)


def wanda(params: WandaParams):
    """The criterion: Wanda scores, compared per output row within each layer."""

    def criterion(request: PruneRequest) -> Mask:
        weights = dict(request.model.named_parameters())
        names = list(request.mask)
        norms = input_norms(request.model, names, request.data, params)
        in_axes = {layer.name: layer.in_axis for layer in request.layers}
        scores = {}
        for name in names:
            score = weights[name].detach().abs().float()
            if name in norms and score.dim() == 2:
                axis = in_axes.get(name, 1)
                shape = [1, 1]
                shape[axis] = -1
                score = score * norms[name].to(score.device).view(shape)
            scores[name] = score
        new = dict(keep_top(scores, request.mask, request.groups))
        for group, keep in request.groups:
            name = group[0]
            if len(group) == 1 and name in norms and scores[name].dim() == 2:
                out_axis = 1 - in_axes.get(name, 1)
                new[name] = per_row(scores[name], request.mask[name], int(keep), out_axis)
        return Mask(new)

    return criterion
