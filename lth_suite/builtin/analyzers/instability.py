"""``instability``: linear mode connectivity of the ticket (Frankle et al., ICML 2020).

From the level's rewind point, two copies of the ticket train with different data
orders; the test error is then measured along the straight line between the two
trained networks. The error barrier is the paper's instability: the highest error
on the path minus the mean of the two endpoints' errors. A ticket is stable to SGD
noise (and, the paper finds, matching) when its barrier is about zero.
"""

from __future__ import annotations

import dataclasses

import torch

from ...api import (
    TICKET,
    Analysis,
    ExperimentFinished,
    LevelFinished,
    LthError,
    derive_seed,
    evaluate,
    snapshot,
    train,
)
from . import InstabilityParams

State = dict[str, torch.Tensor]


def interpolate(a: State, b: State, alpha: float) -> State:
    """(1 - alpha) a + alpha b for every float tensor, batch-norm statistics included;
    integer buffers (batch counters) come from ``a``, as they cannot be mixed."""
    return {k: torch.lerp(v, b[k], alpha) if v.is_floating_point() else v.clone()
            for k, v in a.items()}


def barriers(errors: list[float], alphas: list[float]) -> dict[str, float]:
    """``barrier``: max error minus the mean of the endpoints' errors (the paper's
    instability); ``barrier_linear``: the largest excess over the straight line between
    the endpoints' errors (the convention of later work, e.g. Entezari et al. 2022)."""
    first, last = errors[0], errors[-1]
    return {"barrier": max(errors) - (first + last) / 2,
            "barrier_linear": max(e - ((1 - a) * first + a * last) for e, a in zip(errors, alphas))}


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
        alphas = [i / (self.params.points - 1) for i in range(self.params.points)]
        table: list[dict] = []
        results: list[dict[str, float]] = []
        for ticket in event.of(TICKET):
            r = ticket.replicate
            ends = [self._train(event, r, ticket.mask, copy) for copy in (0, 1)]
            model = fresh_model(experiment, 0)  # weights are overwritten: only the shape matters
            errors = []
            for alpha in alphas:
                model.load_state_dict(interpolate(ends[0], ends[1], alpha))
                loss, accuracy = evaluate(model, experiment.data.x_test, experiment.data.y_test,
                                          experiment.config.acceleration)
                errors.append(1.0 - accuracy)
                table.append({"replicate": r, "alpha": alpha, "error": 1.0 - accuracy,
                              "loss": loss})
            results.append({**barriers(errors, alphas), "max_error": max(errors),
                            "endpoint_error": (errors[0] + errors[-1]) / 2})
        metrics = {k: sum(row[k] for row in results) / len(results) for k in results[0]} \
            if results else {}
        return Analysis(metrics=metrics, table=table)

    def _train(self, event: LevelFinished, replicate: int, mask, copy: int) -> State:
        """One copy: the rewind point's weights and schedule, its own data order."""
        experiment = event.experiment
        point = event.rewind_points[replicate]
        config = experiment.config
        total = config.total if self.params.iterations is None \
            else min(config.total, point.start_iteration + self.params.iterations)
        # One evaluation at each end is all train() must do; the path is evaluated here.
        config = dataclasses.replace(config, total=total, eval_every=max(1, total))
        seed = derive_seed(experiment.spec.experiment.seed, "instability", replicate,
                           event.level, copy)
        model = fresh_model(experiment, seed)
        model.load_state_dict(point.state)
        train(model, mask.to(experiment.device), experiment.data, config, data_seed=seed,
              start_iteration=min(point.start_iteration, total), constant_lr=point.constant_lr)
        return snapshot(model)

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values."""
        return Analysis()
