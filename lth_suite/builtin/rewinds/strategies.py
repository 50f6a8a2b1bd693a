"""The built-in rewind strategies, registered by the package's hook."""

from __future__ import annotations

from dataclasses import dataclass

from ...api import Duration, NoParams, RewindContext, RewindPoint, TrainConfig
from . import AutoParams, StepParams


@dataclass(frozen=True)
class RewindToInit:
    """The original LTH: surviving weights return to their values at iteration 0."""

    def capture_iteration(self, config: TrainConfig) -> int | None:
        """Nothing beyond the init, which the runner always keeps."""
        return None

    def __call__(self, context: RewindContext) -> RewindPoint:
        """Initial weights, full schedule."""
        return RewindPoint(context.init_state, 0)


@dataclass(frozen=True)
class RewindToStep:
    """Surviving weights return to iteration k; training resumes the schedule there."""

    iteration: Duration

    def capture_iteration(self, config: TrainConfig) -> int | None:
        """The rewind iteration, in iterations."""
        return self.iteration.to_iterations(config.per_epoch)

    def __call__(self, context: RewindContext) -> RewindPoint:
        """Weights at k, schedule from k."""
        assert context.captured_state is not None, "runner did not capture the rewind point"
        return RewindPoint(context.captured_state, self.capture_iteration(context.config) or 0)


@dataclass(frozen=True)
class SearchedRewind:
    """Late rewinding to a point the lottery chooses per replicate after the dense
    training: the earliest candidate whose error barrier is under ``threshold`` (the last
    candidate when none is). The lottery keeps every candidate's weights, measures, and
    hands the chosen one over as ``captured_state`` at ``captured_iteration``."""

    candidates: tuple[Duration, ...]
    threshold: float
    points: int
    iterations: Duration | None = None

    def capture_iteration(self, config: TrainConfig) -> int | None:
        """None: the candidates are captured instead (``candidate_iterations``)."""
        return None

    def candidate_iterations(self, config: TrainConfig) -> list[int]:
        """The candidates, in iterations, in the order they are measured."""
        return [c.to_iterations(config.per_epoch) for c in self.candidates]

    def budget(self, config: TrainConfig) -> int | None:
        """Iterations each copy trains past its candidate; None for the whole training."""
        return None if self.iterations is None else self.iterations.to_iterations(config.per_epoch)

    def __call__(self, context: RewindContext) -> RewindPoint:
        """The chosen candidate's weights, schedule from there."""
        assert context.captured_state is not None and context.captured_iteration is not None, \
            "the lottery did not choose the rewind point"
        return RewindPoint(context.captured_state, context.captured_iteration)


@dataclass(frozen=True)
class KeepWeights:
    """Keep the trained weights: replay the LR schedule (``lr``) or the final LR (``finetune``)."""

    replay_schedule: bool

    def capture_iteration(self, config: TrainConfig) -> int | None:
        """Needs only the trained weights."""
        return None

    def __call__(self, context: RewindContext) -> RewindPoint:
        """Trained weights; the schedule from 0, or the schedule's last LR throughout."""
        if self.replay_schedule:
            return RewindPoint(context.trained_state, 0)
        final_lr = context.config.lr_at(max(0, context.config.total - 1))
        return RewindPoint(context.trained_state, 0, constant_lr=final_lr)


def rewind_to_init(params: NoParams) -> RewindToInit:
    """The factory of ``init``."""
    return RewindToInit()


def rewind_to_step(params: StepParams) -> RewindToStep:
    """The factory of ``step``."""
    return RewindToStep(params.iteration)


def rewind_auto(params: AutoParams) -> SearchedRewind:
    """The factory of ``auto``."""
    return SearchedRewind(tuple(params.candidates), params.threshold, params.points,
                          params.iterations)


def rewind_lr(params: NoParams) -> KeepWeights:
    """The factory of ``lr``."""
    return KeepWeights(replay_schedule=True)


def finetune(params: NoParams) -> KeepWeights:
    """The factory of ``finetune``."""
    return KeepWeights(replay_schedule=False)
