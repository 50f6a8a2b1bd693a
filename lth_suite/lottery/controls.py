"""What a control receives and returns: the ticket's context at a level, and the start of
the control's own training.

A control is a sibling branch of the ticket that tests the hypothesis (open_lth's
branches; the literature's sanity checks). Controls are plugins of the kind ``control``:
the planner treats every one alike, by the name it was registered under, and never
knows what any of them does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..errors import LthError
from ..pruning.masks import Layer, Mask
from ..pruning.targets import Criterion, Group, PruneRequest
from ..training.config import TrainConfig
from .rewinding import RewindPoint, State


@dataclass(frozen=True)
class ControlStart:
    """What a control's branch trains from: its mask and its starting point.

    The runner masks ``point.state`` as it does a rewind's, so a control returns whole,
    unmasked state dicts (the context's own tensors are fine: they are never modified).
    """

    mask: Mask
    point: RewindPoint


@dataclass(frozen=True)
class ControlContext:
    """The ticket's context at one (replicate, level), as a control sees it.

    Read it, never modify it: the ticket and the other controls share these tensors.
    """

    replicate: int
    level: int
    mask: Mask  # the ticket's mask at this level
    base_mask: Mask  # the mask the ticket's was pruned from (dense with strategy oneshot)
    point: RewindPoint  # what the ticket trains from (the rewind's point)
    init_state: State  # the replicate's network at iteration 0
    trained_state: State  # the weights the ticket's mask was computed from
    dense_state: State  # the replicate's trained dense network (level 0)
    layers: list[Layer]
    criterion: Criterion  # the experiment's criterion
    data: Any  # the experiment's Splits (StreamedSplits for streamed data)
    config: TrainConfig
    seed: int  # derived from the experiment's seed, the control's name, replicate and level
    generator: torch.Generator = field(repr=False)  # a CPU generator seeded with ``seed``
    build_state: Callable[[int], State] = field(repr=False)
    random_like: Callable[[Mask, torch.Generator], Mask] = field(repr=False)
    request: Callable[[State, Mask, list[Group]], PruneRequest] = field(repr=False)
    seed_for: Callable[[str], int] = field(repr=False)
    # The dense training's weights at the iterations the controls asked for
    # (``capture_iteration``), by iteration.
    captured: Mapping[int, State] = field(default_factory=dict, repr=False)

    def per_layer(self, mask: Mask | None = None) -> list[Group]:
        """One group per tensor keeping its count in ``mask`` (the ticket's by default):
        what a criterion keeps to match the ticket layer by layer."""
        kept = (mask if mask is not None else self.mask).kept()
        return [([name], count) for name, count in kept.items()]


class Control(Protocol):
    """A control, as built by a registered factory."""

    def __call__(self, context: ControlContext, /) -> ControlStart:
        """The mask and starting point of the control's branch at the context's level."""
        ...


def capture_iteration(control: object, config: TrainConfig) -> int | None:
    """The iteration of the dense training whose weights ``control`` needs (its optional
    ``capture_iteration`` method), or None."""
    capture = getattr(control, "capture_iteration", None)
    return None if capture is None else capture(config)


def refusal(control: object, criterion: Criterion) -> str | None:
    """Why ``control`` cannot run beside ``criterion`` (its optional ``refusal`` method),
    or None when it can."""
    check = getattr(control, "refusal", None)
    return None if check is None else check(criterion)


def checked(name: str, start: Any, ticket: Mask) -> ControlStart:
    """The control's start, moved to the ticket's device; a malformed one is an error
    naming the control."""
    if not isinstance(start, ControlStart) or set(start.mask) != set(ticket):
        raise LthError(f"control '{name}' must return a ControlStart whose mask has the "
                       "ticket's tensors")
    device = next(iter(ticket.values())).device
    return ControlStart(start.mask.to(device), start.point)
