"""``mask_similarity``: how much tickets overlap across levels, replicates and controls.

Every overlap is a Jaccard index (IoU) of the kept weights, reported beside its chance
value: the expected IoU of independent random masks with the same per-layer densities.
A ticket is only "special" where its IoU rises above chance.
"""

from __future__ import annotations

from itertools import combinations
from statistics import mean

from ...api import (
    TICKET,
    Analysis,
    ExperimentFinished,
    LevelFinished,
    Mask,
    NoParams,
    chance_iou,
    chance_iou_pooled,
    iou,
)

OVERALL = "all"  # the table's row for all prunable tensors pooled; layer names end in .weight


def cpu(mask: Mask) -> Mask:
    """The mask on the CPU, where comparisons with stored masks happen."""
    return mask.to("cpu")


def compare(a: Mask, b: Mask, names: list[str]) -> dict[str, tuple[float, float]]:
    """(IoU, chance IoU) per tensor and pooled over ``names`` under ``OVERALL``."""
    da, db = a.layer_density(), b.layer_density()
    out = {n: (iou(a, b, [n]), chance_iou(da[n], db[n])) for n in names}
    out[OVERALL] = (iou(a, b, names),
                    chance_iou_pooled([(a[n].numel(), da[n], db[n]) for n in names]))
    return out


def control_pairs(event: LevelFinished, tickets: dict[int, Mask]) -> dict[str, list]:
    """``ticket_vs_<control>``: the ticket against each control of the level that trains a
    mask of its own (``random_prune``, ``inverted``, a plugin's), replicate by replicate.
    A control whose masks equal the tickets' in every replicate (``reinit``) trains the
    ticket's own mask and is left out."""
    pairs: dict[str, list[tuple[Mask, Mask]]] = {}
    for b in event.branches:
        if b.branch != TICKET and b.replicate in tickets:
            pairs.setdefault(f"ticket_vs_{b.branch}", []).append(
                (tickets[b.replicate], cpu(b.mask)))
    return {name: masks for name, masks in pairs.items()
            if not all(ticket.equals(control) for ticket, control in masks)}


class MaskSimilarity:
    """IoU of ticket masks: level L vs L-1, replicate vs replicate, and the ticket against
    each control that draws a mask of its own (``ticket_vs_random_prune``).

    Built once per experiment, so it keeps the previous level's ticket masks (on the
    CPU) to compare with; a resumed run shows it the levels restored from the store
    (``seen_level``), so its comparisons are those of an uninterrupted run.
    """

    def __init__(self) -> None:
        self.previous: dict[int, tuple[int, Mask]] = {}  # replicate -> (level, ticket mask)

    def after_level(self, event: LevelFinished) -> Analysis:
        """Overall IoU and chance per comparison in metrics; per-layer rows in the table."""
        names = [layer.name for layer in event.layers]
        tickets = {b.replicate: cpu(b.mask) for b in event.of(TICKET)}
        pairs = {
            "consecutive": [(mask, tickets[r]) for r, (level, mask) in sorted(self.previous.items())
                            if level == event.level - 1 and r in tickets],
            "replicate": [(tickets[a], tickets[b]) for a, b in combinations(sorted(tickets), 2)],
            **control_pairs(event, tickets),
        }
        self.seen_level(event)
        metrics: dict[str, float] = {}
        table: list[dict] = []
        for comparison, masks in pairs.items():
            if not masks:  # level 0, or a single replicate
                continue
            results = [compare(a, b, names) for a, b in masks]
            densities = [(a.layer_density(), b.layer_density()) for a, b in masks]
            for name in [*names, OVERALL]:
                row = {"comparison": comparison, "layer": name,
                       "iou": mean(r[name][0] for r in results),
                       "chance": mean(r[name][1] for r in results), "pairs": len(masks)}
                if name != OVERALL:
                    row["density_a"] = mean(da[name] for da, _ in densities)
                    row["density_b"] = mean(db[name] for _, db in densities)
                table.append(row)
            metrics[f"{comparison}_iou"] = mean(r[OVERALL][0] for r in results)
            metrics[f"{comparison}_chance"] = mean(r[OVERALL][1] for r in results)
        return Analysis(metrics=metrics, table=table)

    def seen_level(self, event: LevelFinished) -> None:
        """Keep this level's ticket masks for the next level's consecutive comparison."""
        self.previous = {b.replicate: (event.level, cpu(b.mask)) for b in event.of(TICKET)}

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values; frees the stored masks."""
        self.previous = {}
        return Analysis()


def mask_similarity(params: NoParams) -> MaskSimilarity:
    """The factory of ``mask_similarity``."""
    return MaskSimilarity()
