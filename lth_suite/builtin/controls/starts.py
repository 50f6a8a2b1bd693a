"""The built-in controls: each maps the ticket's context at a level to the mask and the
starting point its branch trains from."""

from __future__ import annotations

import dataclasses

import torch

from ...api import (
    ControlContext,
    ControlStart,
    Criterion,
    Duration,
    Mask,
    NoParams,
    RewindPoint,
    State,
    TrainConfig,
    keep_top,
)
from . import RewindStepParams


def _same_schedule(context: ControlContext, state: State) -> RewindPoint:
    """``state`` at the ticket's schedule position (late rewinding, a constant rate)."""
    return RewindPoint(state, context.point.start_iteration, context.point.constant_lr)


def _dense(mask: Mask) -> Mask:
    return Mask({name: torch.ones_like(keep) for name, keep in mask.items()})


class Reinit:
    """The ticket's mask from a fresh random initialisation (Frankle & Carbin 2019): does
    the ticket need its own initial weights?"""

    varies = "weights"  # what it changes of the ticket: the report groups controls by it

    def __call__(self, context: ControlContext) -> ControlStart:
        """The ticket's mask, a network initialised from this control's seed."""
        return ControlStart(context.mask, _same_schedule(context, context.build_state(context.seed)))


class RandomPrune:
    """A random mask of the ticket's per-layer counts, from the ticket's starting weights
    (Frankle & Carbin 2019): does the ticket need its own mask?"""

    varies = "mask"  # what it changes of the ticket: the report groups controls by it

    def __call__(self, context: ControlContext) -> ControlStart:
        """A random mask like the ticket's, the ticket's starting point."""
        # The "random" salt keeps the masks of experiments run before controls were plugins.
        generator = torch.Generator().manual_seed(context.seed_for("random"))
        return ControlStart(context.random_like(context.mask, generator), context.point)


class SignedReinit:
    """The ticket's mask, fresh magnitudes with the signs of the original initialisation
    (Zhou et al. 2019, "Deconstructing lottery tickets: zeros, signs, and the supermask"):
    are the ticket's signs what matters?"""

    varies = "weights"  # what it changes of the ticket: the report groups controls by it

    def __call__(self, context: ControlContext) -> ControlStart:
        """Fresh weights; each masked tensor's magnitudes take the init's signs."""
        state = dict(context.build_state(context.seed))
        for name in context.mask:
            state[name] = state[name].abs() * torch.sign(context.init_state[name])
        return ControlStart(context.mask, _same_schedule(context, state))


class SignedConstant:
    """The ticket's mask, every weight set to plus or minus the standard deviation of its
    layer's initialisation, by its original sign (Zhou et al. 2019): signs alone."""

    varies = "weights"  # what it changes of the ticket: the report groups controls by it

    def __call__(self, context: ControlContext) -> ControlStart:
        """The init's signs times each layer's init standard deviation; other tensors
        (biases, norms) as initialised."""
        state = dict(context.init_state)
        for name in context.mask:
            init = context.init_state[name]
            state[name] = torch.sign(init) * init.float().std().to(init.dtype)
        return ControlStart(context.mask, _same_schedule(context, state))


class Inverted:
    """The criterion's scores inverted, the highest pruned first (Frankle et al. 2021,
    "Pruning neural networks at initialization: why are we missing the mark?"): the
    trained dense network scored by the criterion, its lowest-scoring weights kept at the
    ticket's per-layer counts, trained from the ticket's starting point."""

    varies = "mask"  # what it changes of the ticket: the report groups controls by it

    def refusal(self, criterion: Criterion) -> str | None:
        """Inverting needs scores: a criterion without a ``scores`` method is refused."""
        if getattr(criterion, "scores", None) is None:
            return ("inverted needs the criterion's scores: this criterion has no "
                    "scores(request) method (magnitude, random and lamp have one)")
        return None

    def __call__(self, context: ControlContext) -> ControlStart:
        """The lowest scores' mask at the ticket's per-layer counts."""
        dense = _dense(context.mask)
        request = context.request(context.dense_state, dense, context.per_layer())
        scores = context.criterion.scores(request)  # type: ignore[attr-defined]
        inverted = {name: -score.detach().float().to("cpu") for name, score in scores.items()}
        return ControlStart(keep_top(inverted, dense.to("cpu"), context.per_layer()), context.point)


class OneShot:
    """The replicate's trained dense network pruned once, by the experiment's criterion, to
    the ticket's per-layer counts, trained from the ticket's starting point: iterative
    against one-shot pruning (Frankle & Carbin 2019), paired within one experiment."""

    varies = "mask"  # what it changes of the ticket: the report groups controls by it

    def __call__(self, context: ControlContext) -> ControlStart:
        """The criterion's mask of the trained dense network at the ticket's counts."""
        request = context.request(context.dense_state, _dense(context.mask), context.per_layer())
        return ControlStart(context.criterion(request), context.point)


class RandomLabels:
    """The criterion applied as the ticket's was, to data whose training labels are
    shuffled (Su et al. 2020, "Sanity-checking pruning methods: random tickets can win
    the jackpot"): does a data-driven criterion use the data?"""

    varies = "mask"  # what it changes of the ticket: the report groups controls by it

    def refusal(self, criterion: Criterion) -> str | None:
        """A criterion that reads no data would give the ticket's own mask."""
        if not getattr(criterion, "uses_data", False):
            return ("random_labels needs a data-driven criterion (one that sets uses_data, "
                    "as snip and grasp do): this criterion reads no data")
        return None

    def __call__(self, context: ControlContext) -> ControlStart:
        """The criterion's mask with shuffled training labels, at the ticket's counts."""
        request = context.request(context.trained_state, context.base_mask, context.per_layer())
        labels = request.data.y_train
        order = torch.randperm(len(labels), generator=context.generator).to(labels.device)
        request = dataclasses.replace(request, data=dataclasses.replace(
            request.data, y_train=labels[order]))
        return ControlStart(context.criterion(request), context.point)


class RewindStep:
    """The ticket's mask rewound to iteration k of the dense training instead of the
    experiment's rewind point (Frankle et al. 2020, "Linear mode connectivity and the
    lottery ticket hypothesis"): how early does the ticket's mask stop needing its
    exact starting point?"""

    varies = "weights"  # what it changes of the ticket: the report groups controls by it

    def __init__(self, at: Duration):
        self.at = at

    def capture_iteration(self, config: TrainConfig) -> int:
        """Iteration k: the dense training keeps its weights there for this control."""
        return self.at.to_iterations(config.per_epoch)

    def __call__(self, context: ControlContext) -> ControlStart:
        """The ticket's mask, the dense weights at k, the schedule from k on."""
        at = self.capture_iteration(context.config)
        return ControlStart(context.mask, RewindPoint(context.captured[at], at))


def reinit(params: NoParams) -> Reinit:
    """The ``reinit`` control."""
    return Reinit()


def random_prune(params: NoParams) -> RandomPrune:
    """The ``random_prune`` control."""
    return RandomPrune()


def signed_reinit(params: NoParams) -> SignedReinit:
    """The ``signed_reinit`` control."""
    return SignedReinit()


def signed_constant(params: NoParams) -> SignedConstant:
    """The ``signed_constant`` control."""
    return SignedConstant()


def inverted(params: NoParams) -> Inverted:
    """The ``inverted`` control."""
    return Inverted()


def oneshot(params: NoParams) -> OneShot:
    """The ``oneshot`` control."""
    return OneShot()


def rewind_step(params: RewindStepParams) -> RewindStep:
    """The ``rewind_step`` control."""
    return RewindStep(params.at)


def random_labels(params: NoParams) -> RandomLabels:
    """The ``random_labels`` control."""
    return RandomLabels()
