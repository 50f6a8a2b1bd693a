"""``init_stats``: are the ticket's kept weights special where training starts from?

Zhou et al. (2019) found that the winning weights are larger at initialisation and that
their signs matter. This compares the ticket's kept and pruned weights at the
initialisation (iteration 0) and at the level's rewind point: mean |w| and the
fraction of positive weights, per layer and pooled over all prunable tensors.
"""

from __future__ import annotations

from statistics import mean

import torch

from ...api import TICKET, Analysis, ExperimentFinished, LevelFinished, NoParams

SIDES = ("kept", "pruned")


def split_stats(weights: torch.Tensor, keep: torch.Tensor) -> dict[str, float]:
    """Counts, sum of |w|, positives and exact zeros of the kept and the pruned weights."""
    weights = weights.detach().to("cpu", torch.float64)
    keep = keep.to("cpu", torch.bool)
    out: dict[str, float] = {}
    for side, chosen in zip(SIDES, (weights[keep], weights[~keep])):
        out[f"{side}_n"] = chosen.numel()
        out[f"{side}_abs_sum"] = float(chosen.abs().sum())
        out[f"{side}_positive_n"] = int((chosen > 0).sum())
        out[f"{side}_zero_n"] = int((chosen == 0).sum())
    return out


def summarise(stats: dict[str, float]) -> dict[str, float | None]:
    """Mean |w| and fraction positive of each side (None for an empty side), and their ratio."""
    row: dict[str, float | None] = {}
    for side in SIDES:
        n = stats[f"{side}_n"]
        row[f"{side}_abs_mean"] = stats[f"{side}_abs_sum"] / n if n else None
        row[f"{side}_positive"] = stats[f"{side}_positive_n"] / n if n else None
    # Weights pruned at earlier levels are exactly zero at a rewind point taken from
    # trained weights (lr, finetune): this shows how much that drags "pruned" down.
    n = stats["pruned_n"]
    row["pruned_zero"] = stats["pruned_zero_n"] / n if n else None
    kept, pruned = row["kept_abs_mean"], row["pruned_abs_mean"]
    row["abs_ratio"] = kept / pruned if kept is not None and pruned else None
    return row


class InitStats:
    """Magnitude and sign of kept vs pruned weights, at initialisation and at the rewind point."""

    def after_level(self, event: LevelFinished) -> Analysis:
        """Per (replicate, state, layer) rows; pooled values, averaged over replicates, as
        ``init_kept_abs_mean``, ``rewind_pruned_positive``, ... (none for an empty side)."""
        table: list[dict] = []
        per_replicate: list[dict[str, float]] = []
        for ticket in event.of(TICKET):
            r = ticket.replicate
            point = event.rewind_points.get(r)
            states = {"init": event.init_states.get(r),
                      "rewind": point.state if point is not None else None}
            metrics: dict[str, float] = {}
            for label, state in states.items():
                if state is None:
                    continue
                pooled: dict[str, float] = {}
                for layer in event.layers:
                    stats = split_stats(state[layer.name], ticket.mask[layer.name])
                    table.append({"replicate": r, "state": label, "layer": layer.name,
                                  "kept": stats["kept_n"], "pruned": stats["pruned_n"],
                                  **summarise(stats)})
                    for key, value in stats.items():
                        pooled[key] = pooled.get(key, 0.0) + value
                metrics.update({f"{label}_{k}": v for k, v in summarise(pooled).items()
                                if v is not None})
            per_replicate.append(metrics)
        keys = sorted({k for m in per_replicate for k in m})
        return Analysis(metrics={k: mean(m[k] for m in per_replicate if k in m) for k in keys},
                        table=table)

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values."""
        return Analysis()


def init_stats(params: NoParams) -> InitStats:
    """The factory of ``init_stats``."""
    return InitStats()
