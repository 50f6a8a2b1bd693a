"""What ``--dry-run`` shows: the experiment's plan, checked as far as it can be without
training or logging anything.

With its data at hand the plan is exact: trainings (levels x branches x replicates),
the density of every level, the iterations, and a time estimated from a short timed
training of the real network. Without it (a dataset that is not downloaded, a machine
offline) the spec and every component that needs no data are still checked, and the
plan says what it cannot know and which checks were skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..errors import DataMissing
from ..lottery.experiment import Experiment
from ..plugins.manager import Plugins
from ..spec.loading import spec_hash
from ..spec.sections import ExperimentSpec

PROBE_STEPS = 12  # training steps timed for the estimate, after one that warms up
# What a dry run without data cannot check: each needs the data or a network built for it.
SKIPPED_WITHOUT_DATA = (
    "the dataset loads and splits", "the model builds for the data's input shape",
    "the batch size fits the training set", "pruning.exclude names prunable layers",
    "the rewind point lies within the training", "the time estimate")


def plan_lines(experiment: Experiment, probe: bool = True) -> list[str]:
    """The plan of a prepared experiment, one fact a line, warnings last."""
    spec, config = experiment.spec, experiment.config
    trainings = experiment.trainings()
    lines = ["plan: " + _shape(spec, trainings),
             f"iterations: {config.total:,} per training ({config.per_epoch:,} per epoch), "
             f"{trainings * config.total:,} in all",
             "weights remaining per level: " + ", ".join(
                 f"{100 * d:.3g}%" for d in level_densities(experiment))]
    if probe:
        lines.append(_estimate(experiment, trainings))
    return lines + experiment.notes + _warnings(config.total, config.warmup, config.eval_every)


def plan_without_data(spec: ExperimentSpec, plugins: Plugins, error: DataMissing) -> list[str]:
    """The plan of a spec whose data is not available: what the spec alone says, each
    component that needs no data built (a bad param still fails), and what was skipped."""
    registry = plugins.registry
    for kind, section in (("criterion", spec.pruning.criterion), ("rewind", spec.rewind),
                          *(("analyzer", a) for a in spec.analyzers)):
        registry.build(kind, section.name, section.params)
    replicates, levels = spec.experiment.replicates, spec.pruning.levels
    controls = spec.controls.enabled()
    controlled = levels + (1 if spec.sparsity and spec.sparsity.dynamic else 0)
    trainings = replicates * (1 + levels + controlled * len(controls))
    duration, warmup = spec.training.duration, spec.training.schedule.warmup
    lines = [f"{spec.experiment.name} [{spec_hash(spec)}]: data not available ({error}); "
             "planned from the spec alone",
             "plan: " + _shape(spec, trainings),
             f"duration: {duration} per training"
             + (f", {trainings * int(duration.amount):,} iterations in all"
                if duration.unit == "it" else " (iterations: need the training set's size)"),
             "weights remaining per level, by layer kind: " + "; ".join(
                 f"{kind} " + ", ".join(f"{100 * (1 - fraction) ** lv:.3g}%"
                                        for lv in range(levels + 1))
                 for kind in ("conv", "linear", "output")
                 if (fraction := spec.pruning.fraction.for_kind(kind)) is not None)]
    if duration.unit == warmup.unit:  # eval_every counts iterations: comparable with "it" only
        lines += _warnings(duration.amount, warmup.amount,
                           spec.training.eval_every if duration.unit == "it" else 0)
    return lines + ["skipped (they need the data): " + "; ".join(SKIPPED_WITHOUT_DATA)]


def _shape(spec: ExperimentSpec, trainings: int) -> str:
    branches = ["ticket", *spec.controls.enabled()]
    return (f"levels 0-{spec.pruning.levels} x "
            f"branches {', '.join(branches)} (level 0: ticket only) x "
            f"{spec.experiment.replicates} replicate(s) = {trainings} trainings")


def level_densities(experiment: Experiment) -> list[float]:
    """The fraction of prunable weights each level keeps, from every layer's rate (what
    a layerwise criterion keeps; a global one keeps the same total per kind)."""
    spec = experiment.spec
    start = spec.sparsity.density if spec.sparsity is not None else 1.0
    kept = {layer.name: layer.numel * start for layer in experiment.layers}
    total = sum(layer.numel for layer in experiment.layers) or 1
    densities = [sum(kept.values()) / total]
    rules = spec.pruning
    for level in range(1, rules.levels + 1):
        for layer in experiment.layers:
            module = layer.name.rsplit(".", 1)[0]
            fraction = rules.fraction.for_kind(layer.kind)
            if fraction is None or layer.name in rules.exclude or module in rules.exclude:
                continue
            base = layer.numel * start if rules.strategy == "oneshot" else kept[layer.name]
            kept[layer.name] = base * (1 - fraction) ** (level if rules.strategy == "oneshot"
                                                         else 1)
        densities.append(sum(kept.values()) / total)
    return densities


def _estimate(experiment: Experiment, trainings: int) -> str:
    """The trainings' time from a few timed steps of the real network on the real data
    (MLflow logging, checkpoints and analyzers come on top)."""
    from ..pruning.masks import Mask
    from ..training.single import train

    config = experiment.config
    steps = min(PROBE_STEPS, config.total)
    probe = dataclasses.replace(config, total=steps + 1, eval_every=steps + 1, warmup=0,
                                milestones=())
    model = experiment.build_model(experiment.spec.experiment.seed)
    timed = train(model, Mask.dense(model, experiment.layers), experiment.data, probe,
                  data_seed=0).timings
    per_step = timed.get("steps", 0.0) / (steps + 1)
    evaluations = config.total // config.eval_every + 1
    seconds = trainings * (config.total * per_step + evaluations * timed.get("evaluation", 0.0))
    return (f"estimated time: {_duration(seconds)} of training on {experiment.device} "
            f"({1000 * per_step:.1f} ms a step over {steps + 1} timed steps; logging, "
            "checkpoints and analyzers come on top)")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _warnings(total: float, warmup: float, eval_every: int) -> list[str]:
    found: Sequence[str] = []
    if warmup > total:
        found = [*found, f"warning: the warmup ({warmup:g}) is longer than the training "
                         f"({total:g}): the learning rate never reaches training.lr"]
    if eval_every > total:
        found = [*found, f"warning: training.eval_every ({eval_every}) is longer than the "
                         f"training ({total:g}): one evaluation, at the end, picks the early stop"]
    return list(found)
