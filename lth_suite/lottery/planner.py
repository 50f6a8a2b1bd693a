"""A level's planned trainings: which networks train, with which mask, from which weights.

The planner decides everything a training needs before it starts (replicate, branch,
mask, starting weights and schedule position, data seed) and skips what the store
already holds: a finished training comes back restored instead of planned (open_lth's
"if it exists, return"). It opens each planned training's child run, so that a failing
criterion or rewind is recorded on the run it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import LthError
from ..pruning import nm
from ..pruning.allocation import shapes_of, uniform_counts
from ..pruning.masks import Mask, keep_top
from ..pruning.shaping import allocated_groups, nm_groups
from ..pruning.targets import Group, PruneRequest, layer_fraction, random_mask_like, target_groups
from ..seeding import derive_seed
from ..tracking.names import TICKET, child_run_name
from ..training.result import snapshot
from .checkpoints import Checkpoints, Finished
from .child_runs import Guard
from .controls import ControlContext, checked
from .events import BranchResult
from .experiment import Experiment
from .rewinding import RewindContext, RewindPoint

State = dict[str, torch.Tensor]
Restore = Callable[[Finished, int, int, str, int | None], BranchResult]


@dataclass
class Planned:
    """One training a level needs: its child run is open, nothing has trained yet."""

    replicate: int
    level: int
    branch: str
    run: str  # the open child run
    mask: Mask
    point: RewindPoint  # starting weights and schedule position
    data_seed: int
    capture: int | None = None  # the iteration whose weights the rewind needs (dense only)
    control_captures: tuple[int, ...] = ()  # those the controls (or a searched rewind) need (dense only)

    @property
    def name(self) -> str:
        """``r0-level2-ticket``."""
        return child_run_name(self.replicate, self.level, self.branch)


@dataclass
class Trained:
    """A trained ticket that a later level prunes."""

    mask: Mask
    state: State


@dataclass
class ReplicateState:
    """What later levels of one replicate need from earlier ones; nothing else is kept."""

    init_state: State
    captured_state: State | None
    dense: Trained  # level 0
    last: Trained  # the latest ticket
    control_captured: dict[int, State] = field(default_factory=dict)  # for the controls
    dense_run: str = ""  # the level-0 ticket's run
    # a searched rewind's chosen point (``captured_state`` holds its weights), once chosen
    captured_iteration: int | None = None


class Planner:
    """Plans each level of one experiment, replicate by replicate."""

    def __init__(self, experiment: Experiment, model: torch.nn.Module, guard: Guard,
                 checkpoints: Checkpoints, restore: Restore):
        self.experiment, self.model, self.guard = experiment, model, guard
        self.checkpoints, self.restore = checkpoints, restore
        self.capture = experiment.rewind.capture_iteration(experiment.config)
        self.states: dict[int, ReplicateState] = {}
        self.points: dict[int, RewindPoint] = {}  # this level's, per replicate
        self._init_states: dict[int, State] = {}  # level 0's, until its ticket is kept
        # Tickets finished in this process: planning a level again (a population that
        # diverged, retried one network at a time) must not train them twice.
        self._kept: dict[tuple[int, int], BranchResult] = {}

    def alive(self, level: int) -> list[int]:
        """The replicates that train at ``level``: a diverged ticket ends its replicate."""
        return [r for r in range(self.experiment.spec.experiment.replicates)
                if level == 0 or r in self.states]

    def plan(self, replicate: int, level: int, controls: Collection[str] | None = None,
             ) -> Iterator[Planned | BranchResult]:
        """The level's trainings of one replicate, ticket first, then the asked-for controls
        (all that the spec enables by default); each finished one comes back restored (a
        ``BranchResult``).

        Lazy: a control is planned only once the caller asks for it, after the ticket.
        """
        if level == 0:
            dense = self._dense(replicate)
            yield dense
            if self.experiment.dynamic is not None:  # a sparse level 0 has controls of its own
                yield from self._controls(replicate, 0, lambda: (
                    dense.mask, dense.mask, self.states[replicate].dense.state),
                                          self.points[replicate], controls)
            return
        yield from self._pruned(replicate, level, controls)

    def keep(self, result: BranchResult) -> None:
        """Keep what later levels need from a ticket, trained or restored."""
        if result.branch != TICKET:
            return
        self._kept = {key: kept for key, kept in self._kept.items() if key[1] >= result.level}
        self._kept[(result.replicate, result.level)] = result
        trained = Trained(result.mask, result.result.state)
        if result.level == 0:
            captured = (result.result.captured.get(self.capture)
                        if self.capture is not None else None)
            self.states[result.replicate] = ReplicateState(
                self._init_states.pop(result.replicate), captured, trained, trained,
                {at: result.result.captured[at] for at in self.experiment.dense_captures},
                result.run_id)
        else:
            self.states[result.replicate].last = trained

    def choose(self, replicate: int, iteration: int) -> None:
        """A searched rewind's chosen point: the dense weights at ``iteration`` become the
        replicate's rewind weights; the other candidates' weights are let go."""
        state = self.states[replicate]
        state.captured_state, state.captured_iteration = state.control_captured[iteration], iteration
        state.control_captured = {at: state.control_captured[at]
                                  for at in self.experiment.control_captures}

    def drop(self, replicate: int) -> None:
        """Forget a replicate whose ticket diverged: it trains no further level."""
        self.states.pop(replicate, None)

    def _data_seed(self, replicate: int) -> int:
        return derive_seed(self.experiment.spec.experiment.seed, "data", replicate)

    def _dense(self, replicate: int) -> Planned | BranchResult:
        seed = self.experiment.spec.experiment.seed
        init_state = snapshot(self.experiment.build_model(derive_seed(seed, "init", replicate)))
        self.points[replicate] = RewindPoint(init_state)
        self._init_states[replicate] = init_state
        done = self.checkpoints.get(replicate, 0, TICKET)
        if done is not None:
            return self.restore(done, replicate, 0, TICKET, self.capture)
        if (replicate, 0) in self._kept:
            return self._kept[(replicate, 0)]
        if self.experiment.dynamic is None:
            return Planned(replicate, 0, TICKET, self.guard.open(replicate, 0, TICKET),
                           Mask.dense(self.model, self.experiment.layers), self.points[replicate],
                           self._data_seed(replicate), self.capture,
                           self.experiment.dense_captures)
        planned = self._open(replicate, 0, TICKET, lambda: (
            self._sparse_start(replicate), self.points[replicate]))
        planned.capture, planned.control_captures = self.capture, self.experiment.dense_captures
        return planned

    def _pruned(self, replicate: int, level: int,
                controls: Collection[str] | None) -> Iterator[Planned | BranchResult]:
        spec, state = self.experiment.spec, self.states[replicate]
        oneshot = spec.pruning.strategy == "oneshot"
        source = state.dense if oneshot else state.last
        base = Mask.dense(self.model, self.experiment.layers) if oneshot else source.mask
        point = self.guard.call("rewind", spec.rewind.name, self.experiment.rewind, RewindContext(
            state.init_state, state.captured_state, source.state, self.experiment.config,
            state.captured_iteration))
        self.points[replicate] = point
        done = self.checkpoints.get(replicate, level, TICKET)
        if done is not None or (replicate, level) in self._kept:
            ticket = (self.restore(done, replicate, level, TICKET, None) if done is not None
                      else self._kept[(replicate, level)])
            mask = ticket.mask
            yield ticket
        else:
            def prune() -> tuple[Mask, RewindPoint]:
                self.model.load_state_dict(source.state)
                return self._prune(replicate, level, base, state), point

            planned = self._open(replicate, level, TICKET, prune)
            mask = planned.mask
            yield planned
        yield from self._controls(replicate, level, lambda: (mask, base, source.state),
                                  point, controls)

    def _controls(self, replicate: int, level: int, ticket: Callable[[], tuple[Mask, Mask, State]],
                  point: RewindPoint, controls: Collection[str] | None,
                  ) -> Iterator[Planned | BranchResult]:
        """The level's asked-for controls; ``ticket`` gives the ticket's mask, the mask it
        was pruned from and the weights it was pruned by, read once the ticket trained
        (dynamic sparse training moves a level-0 ticket's mask while it trains)."""
        for name, control in self.experiment.controls_built.items():
            if controls is not None and name not in controls:
                continue
            done = self.checkpoints.get(replicate, level, name)
            if done is not None:
                yield self.restore(done, replicate, level, name, None)
                continue

            def setup(name: str = name, control: Any = control) -> tuple[Mask, RewindPoint]:
                mask, base, trained = ticket()
                context = self._context(replicate, level, name, (mask, base, trained), point)
                start = checked(name, self.guard.call("control", name, control, context), mask)
                return start.mask, start.point

            yield self._open(replicate, level, name, setup)

    def _context(self, replicate: int, level: int, name: str,
                 ticket: tuple[Mask, Mask, State], point: RewindPoint) -> ControlContext:
        """What a control sees of the ticket at one (replicate, level)."""
        experiment, state = self.experiment, self.states[replicate]
        seed = experiment.spec.experiment.seed
        mask, base, trained = ticket

        def request(weights: State, current: Mask, groups: list[Group]) -> PruneRequest:
            self.model.load_state_dict(weights)
            return PruneRequest(self.model, current, experiment.layers, groups, level,
                                torch.Generator().manual_seed(control_seed), state.init_state,
                                experiment.data)

        control_seed = derive_seed(seed, name, replicate, level)
        return ControlContext(
            replicate, level, mask, base, point, state.init_state, trained,
            state.dense.state, experiment.layers, experiment.criterion, experiment.data,
            experiment.config, control_seed, torch.Generator().manual_seed(control_seed),
            # a fresh draw is the architecture's own initialisation, never the pretrained weights
            build_state=lambda at: snapshot(experiment.build_model(at, pretrained=False)),
            random_like=lambda like, generator: self._random_like(like, level, generator),
            request=request,
            seed_for=lambda salt: derive_seed(seed, salt, replicate, level),
            captured=state.control_captured)

    def _open(self, replicate: int, level: int, branch: str,
              setup: Callable[[], tuple[Mask, RewindPoint]]) -> Planned:
        """Open the training's child run, then decide its mask and start inside it."""
        run = self.guard.open(replicate, level, branch)
        try:
            mask, point = setup()
        except BaseException as exc:
            self.guard.close(run, exc)
            raise
        return Planned(replicate, level, branch, run, mask, point, self._data_seed(replicate))

    def _sparse_start(self, replicate: int) -> Mask:
        """Dynamic sparse training's random mask at ``sparsity.density``, shared among the
        layers the rules prune as the allocation says (uniform by default)."""
        sparsity, rules = self.experiment.spec.sparsity, self.experiment.spec.pruning
        assert sparsity is not None and sparsity.density is not None
        dense = Mask.dense(self.model, self.experiment.layers)
        names = [layer.name for layer in self.experiment.layers if layer_fraction(layer, rules) is not None]
        shapes = shapes_of(dense, names)
        counts = (self.experiment.allocation or uniform_counts)(shapes, sparsity.density)
        generator = torch.Generator().manual_seed(
            derive_seed(self.experiment.spec.experiment.seed, "sparse_start", replicate))
        scores = {name: torch.rand(keep.shape, generator=generator) for name, keep in dense.items()}
        return keep_top(scores, dense, [([name], count) for name, count in zip(names, counts)])

    def _pattern(self, level: int) -> tuple[int, int] | None:
        """``(kept per group, M)`` of the level's N:M pattern, or None."""
        sparsity = self.experiment.spec.sparsity
        if sparsity is None or sparsity.pattern is None or level == 0:
            return None
        return sparsity.kept_per_group(level, self.experiment.spec.pruning.levels), sparsity.nm()[1]

    def _random_like(self, ticket: Mask, level: int, generator: torch.Generator) -> Mask:
        """A random mask of ``ticket``'s per-layer counts (and the level's N:M pattern)."""
        pattern = self._pattern(level)
        if pattern is None:
            return random_mask_like(ticket, generator)
        structured = {names[0] for names, _ in nm_groups(
            self.experiment.layers, ticket, self.experiment.spec.pruning, *pattern)}
        return nm.random_like(ticket, structured, *pattern, generator)

    def _groups(self, level: int, base: Mask) -> list[Group]:
        """What the level keeps: the rules' targets, shared out by the allocation, or the
        level's N:M counts."""
        rules = self.experiment.spec.pruning
        pattern = self._pattern(level)
        if pattern is not None:
            return nm_groups(self.experiment.layers, base, rules, *pattern)
        groups = target_groups(self.experiment.layers, base, rules, level)
        return groups if self.experiment.allocation is None else allocated_groups(
            groups, base, self.experiment.allocation)

    def _prune(self, replicate: int, level: int, base: Mask, state: ReplicateState) -> Mask:
        rules = self.experiment.spec.pruning
        groups = self._groups(level, base)
        generator = torch.Generator().manual_seed(
            derive_seed(self.experiment.spec.experiment.seed, "prune", replicate, level))
        request = PruneRequest(self.model, base, self.experiment.layers, groups, level, generator,
                               state.init_state, self.experiment.data)
        mask = self.guard.call("criterion", rules.criterion.name, self.experiment.criterion, request)
        mask = mask.to(self.experiment.device)
        pattern = self._pattern(level)
        if pattern is not None and set(mask) == set(base) and mask.is_subset_of(base):
            weights = dict(self.model.named_parameters())
            mask = nm.project(mask, base, {name: weights[name] for name in mask}, *pattern,
                              names={name for names, _ in groups for name in names})
        kept = mask.kept()
        wrong = [names for names, keep in groups if sum(kept[n] for n in names) != keep]
        if set(mask) != set(base) or not mask.is_subset_of(base) or wrong:
            raise LthError(f"criterion '{rules.criterion.name}' returned an invalid mask at level "
                           f"{level}: it must keep a subset of the current mask with the target "
                           f"count per group{f' (wrong: {wrong[0]})' if wrong else ''}")
        return mask
