"""wanda against a hand computation on a small linear layer."""

from __future__ import annotations

import torch
from torch import nn

from lth_suite.builtin.criteria import WandaParams
from lth_suite.builtin.criteria.wanda import wanda
from lth_suite.pruning.masks import Mask, prunable_layers
from lth_suite.pruning.targets import PruneRequest
from lth_suite.training.data import DataInfo, Splits


def test_wanda_keeps_the_largest_weight_times_input_norm_of_each_row():
    layer = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 0.5]]))
    x = torch.tensor([[4.0, 0.0, 0.0], [3.0, 1.0, 0.1], [0.0, 0.0, 0.1]])  # norms 5, 1, ~0.141
    info = DataInfo("x", (3,), 2)
    data = Splits(x, torch.zeros(3, dtype=torch.long), x, torch.zeros(3), x, torch.zeros(3), info)
    layers = prunable_layers(nn.Sequential(layer))
    model = nn.Sequential(layer)
    mask = Mask.dense(model, layers)
    request = PruneRequest(model, mask, layers, [(["0.weight"], 2)], 1, torch.Generator(),
                           data=data)
    kept = wanda(WandaParams(batches=1, batch_size=3))(request)["0.weight"]
    # scores: row 0: 5, 2, 0.42 -> keeps column 0; row 1: 15, 1, 0.07 -> keeps column 0
    assert kept.tolist() == [[True, False, False], [True, False, False]]
    assert magnitude_would_differ(layer.weight)


def magnitude_would_differ(weight):
    return weight[0].abs().argmax() != 0
