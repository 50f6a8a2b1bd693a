"""``instability``: linear mode connectivity of the ticket (Frankle et al., ICML 2020).

From the level's rewind point, two copies of the ticket train with different data
orders; the test error is then measured along the straight line between the two
trained networks. The error barrier is the paper's instability: the highest error
on the path minus the mean of the two endpoints' errors. A ticket is stable to SGD
noise (and, the paper finds, matching) when its barrier is about zero.
"""

from __future__ import annotations

import torch

from ...api import (
    TICKET,
    Analysis,
    ExperimentFinished,
    LevelFinished,
    LthError,
    barriers,
    copy_config,
    derive_seed,
    interpolate,
    linear_path,
    train_copies,
)
from . import InstabilityParams

__all__ = ["Instability", "barriers", "fresh_model", "interpolate"]

State = dict[str, torch.Tensor]


def fresh_model(experiment, seed: int) -> torch.nn.Module:
    """A new network from the experiment, leaving torch's global generators as they were
    (``build_model`` reseeds them)."""
    cuda = [experiment.device] if experiment.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return experiment.build_model(seed)


class Instability:
    """Trains two copies of each replicate's ticket per level: opt in, it costs two trainings."""

    def __init__(self, params: InstabilityParams):
        self.params = params

    def after_level(self, event: LevelFinished) -> Analysis:
        """Mean ``barrier``, ``barrier_linear``, ``endpoint_error`` and ``max_error`` over
        replicates; one table row per (replicate, alpha) with test error and loss."""
        experiment = event.experiment
        if experiment is None:
            raise LthError("analyzer 'instability' needs the prepared experiment "
                           "(LevelFinished.experiment) to train with")
        table: list[dict] = []
        results: list[dict[str, float]] = []
        for ticket in event.of(TICKET):
            r = ticket.replicate
            ends = self._train(event, r, ticket.mask)
            model = fresh_model(experiment, 0)  # weights are overwritten: only the shape matters
            rows = linear_path(model, ends[0], ends[1], self.params.points, experiment.data,
                               experiment.config)
            table += [{"replicate": r, **row} for row in rows]
            errors = [row["error"] for row in rows]
            results.append({**barriers(errors, [row["alpha"] for row in rows]),
                            "max_error": max(errors),
                            "endpoint_error": (errors[0] + errors[-1]) / 2})
        metrics = {k: sum(row[k] for row in results) / len(results) for k in results[0]} \
            if results else {}
        return Analysis(metrics=metrics, table=table)

    def _train(self, event: LevelFinished, replicate: int, mask) -> list[State]:
        """Two copies: the rewind point's weights and schedule, each its own data order."""
        experiment = event.experiment
        point = event.rewind_points[replicate]
        config = copy_config(experiment.config, point.start_iteration, self.params.iterations)
        seeds = [derive_seed(experiment.spec.experiment.seed, "instability", replicate,
                             event.level, copy) for copy in (0, 1)]
        model = fresh_model(experiment, seeds[0])
        return train_copies(model, [point.state] * 2, [mask] * 2, seeds, experiment.data, config,
                            start_iteration=point.start_iteration, constant_lr=point.constant_lr)

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values."""
        return Analysis()
