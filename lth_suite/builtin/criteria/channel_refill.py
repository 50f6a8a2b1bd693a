"""``channel_refill``: structured tickets by refilling (Chen et al., NeurIPS 2022).

"Coarsening the Granularity: Towards Structurally Sparse Lottery Tickets": after
unstructured magnitude pruning, the conv filters (output channels) that kept the most
weights are made dense again and every other filter is removed, so the ticket's
sparsity is whole filters and the network can be physically shrunk.

Per group of the level (one layer, or a kind's layers under ``global`` scope):

1. magnitude pruning to the group's target, as ``magnitude`` does; under ``global``
   scope this decides each layer's share of the target;
2. in each conv layer, rank the filters by how many weights they kept in step 1
   (ties: larger |w| sum first, then lower index), then admit filters in that order,
   each with every weight the *current* mask still has (masks only shrink), until
   the layer's share is reached; the last admitted filter is filled by magnitude so
   the count is exact, the rest are pruned entirely.

Non-conv layers keep step 1's magnitude mask.
"""

from __future__ import annotations

import torch

from ...api import Mask, NoParams, PruneRequest, keep_top


def filter_ranks(magnitude: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Rank of each filter (0 = admitted first): most kept weights, then largest kept |w|."""
    filters = kept.shape[0]
    counts = kept.reshape(filters, -1).sum(1)
    l1 = (magnitude * kept).reshape(filters, -1).sum(1)
    order = torch.argsort(-l1, stable=True)  # stable sorts: the later key decides first
    order = order[torch.argsort(-counts[order], stable=True)]
    ranks = torch.empty(filters, dtype=torch.long)
    ranks[order.cpu()] = torch.arange(filters)
    return ranks


def refill_scores(magnitude: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Scores under which the top-k weights are whole filters in rank order, then |w|.

    A filter's weights all score in [tier, tier + 0.5), tiers one apart, so ``keep_top``
    takes every current weight of a better-ranked filter before any of a worse one and
    splits only the last admitted filter, by magnitude.
    """
    magnitude = magnitude.detach().to("cpu", torch.float64)
    ranks = filter_ranks(magnitude, kept.to("cpu", torch.bool))
    tier = (kept.shape[0] - ranks).to(torch.float64)
    tier = tier.reshape(-1, *([1] * (magnitude.dim() - 1)))
    return tier + 0.5 * magnitude / (1.0 + magnitude.max())


def channel_refill(params: NoParams) -> object:
    """Magnitude pruning, then whole conv filters refilled (Chen et al. 2022); exact counts."""

    def criterion(request: PruneRequest) -> Mask:
        weights = dict(request.model.named_parameters())
        magnitude = {name: weights[name].detach().abs() for name in request.mask}
        unstructured = keep_top(magnitude, request.mask, request.groups)
        shares = unstructured.kept()
        scores, groups = {}, []
        for names, _ in request.groups:
            for name in names:
                if request.mask[name].dim() == 4:
                    scores[name] = refill_scores(magnitude[name], unstructured[name])
                    groups.append(([name], shares[name]))
        if not groups:
            return unstructured
        refilled = keep_top(scores, Mask({n: request.mask[n] for n in scores}), groups)
        return Mask({name: refilled[name] if name in scores else keep
                     for name, keep in unstructured.items()})

    return criterion
