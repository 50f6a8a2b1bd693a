"""A level's planned trainings: which networks train, with which mask, from which weights.

The planner decides everything a training needs before it starts (replicate, branch,
mask, starting weights and schedule position, data seed) and skips what the store
already holds: a finished training comes back restored instead of planned (open_lth's
"if it exists, return"). It opens each planned training's child run, so that a failing
criterion or rewind is recorded on the run it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import torch

from ..errors import LthError
from ..pruning.masks import Mask
from ..pruning.targets import PruneRequest, random_mask_like, target_groups
from ..seeding import derive_seed
from ..tracking.names import CONTROLS, RANDOM_PRUNE, REINIT, TICKET, child_run_name
from ..training.result import snapshot
from .checkpoints import Checkpoints, Finished
from .events import BranchResult
from .experiment import Experiment
from .guard import Guard
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


class Planner:
    """Plans each level of one experiment, replicate by replicate."""

    def __init__(self, experiment: Experiment, model: torch.nn.Module, guard: Guard,
                 checkpoints: Checkpoints, restore: Restore):
        self.x, self.model, self.guard = experiment, model, guard
        self.checkpoints, self.restore = checkpoints, restore
        self.capture = experiment.rewind.capture_iteration(experiment.config)
        self.states: dict[int, ReplicateState] = {}
        self.points: dict[int, RewindPoint] = {}  # this level's, per replicate
        self._init_states: dict[int, State] = {}  # level 0's, until its ticket is kept

    def alive(self, level: int) -> list[int]:
        """The replicates that train at ``level``: a diverged ticket ends its replicate."""
        return [r for r in range(self.x.spec.experiment.replicates)
                if level == 0 or r in self.states]

    def plan(self, replicate: int, level: int, controls: Collection[str] = CONTROLS,
             ) -> Iterator[Planned | BranchResult]:
        """The level's trainings of one replicate, ticket first, then the asked-for controls
        the spec enables; each finished one comes back restored (a ``BranchResult``).

        Lazy: a control is planned only once the caller asks for it, after the ticket.
        """
        if level == 0:
            yield self._dense(replicate)
            return
        yield from self._pruned(replicate, level, controls)

    def keep(self, result: BranchResult) -> None:
        """Keep what later levels need from a ticket, trained or restored."""
        if result.branch != TICKET:
            return
        trained = Trained(result.mask, result.result.state)
        if result.level == 0:
            captured = (result.result.captured.get(self.capture)
                        if self.capture is not None else None)
            self.states[result.replicate] = ReplicateState(
                self._init_states.pop(result.replicate), captured, trained, trained)
        else:
            self.states[result.replicate].last = trained

    def drop(self, replicate: int) -> None:
        """Forget a replicate whose ticket diverged: it trains no further level."""
        self.states.pop(replicate, None)

    def _data_seed(self, replicate: int) -> int:
        return derive_seed(self.x.spec.experiment.seed, "data", replicate)

    def _dense(self, replicate: int) -> Planned | BranchResult:
        seed = self.x.spec.experiment.seed
        init_state = snapshot(self.x.build_model(derive_seed(seed, "init", replicate)))
        self.points[replicate] = RewindPoint(init_state)
        self._init_states[replicate] = init_state
        done = self.checkpoints.get(replicate, 0, TICKET)
        if done is not None:
            return self.restore(done, replicate, 0, TICKET, self.capture)
        run = self.guard.open(replicate, 0, TICKET)
        return Planned(replicate, 0, TICKET, run, Mask.dense(self.model, self.x.layers),
                       self.points[replicate], self._data_seed(replicate), self.capture)

    def _pruned(self, replicate: int, level: int,
                controls: Collection[str]) -> Iterator[Planned | BranchResult]:
        spec, state = self.x.spec, self.states[replicate]
        oneshot = spec.pruning.strategy == "oneshot"
        source = state.dense if oneshot else state.last
        point = self.guard.call("rewind", spec.rewind.name, self.x.rewind, RewindContext(
            state.init_state, state.captured_state, source.state, self.x.config))
        self.points[replicate] = point
        done = self.checkpoints.get(replicate, level, TICKET)
        if done is not None:
            ticket = self.restore(done, replicate, level, TICKET, None)
            mask = ticket.mask
            yield ticket
        else:
            def prune() -> tuple[Mask, RewindPoint]:
                base = Mask.dense(self.model, self.x.layers) if oneshot else source.mask
                self.model.load_state_dict(source.state)
                return self._prune(replicate, level, base, state), point

            planned = self._open(replicate, level, TICKET, prune)
            mask = planned.mask
            yield planned
        seed = spec.experiment.seed
        setups = {
            REINIT: lambda: (mask, RewindPoint(snapshot(self.x.build_model(derive_seed(
                seed, REINIT, replicate, level))), point.start_iteration, point.constant_lr)),
            RANDOM_PRUNE: lambda: (random_mask_like(mask, torch.Generator().manual_seed(
                derive_seed(seed, "random", replicate, level))), point),
        }
        for control in self.x.controls():
            if control not in controls:
                continue
            done = self.checkpoints.get(replicate, level, control)
            if done is not None:
                yield self.restore(done, replicate, level, control, None)
            else:
                yield self._open(replicate, level, control, setups[control])

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

    def _prune(self, replicate: int, level: int, base: Mask, state: ReplicateState) -> Mask:
        rules = self.x.spec.pruning
        groups = target_groups(self.x.layers, base, rules, level)
        generator = torch.Generator().manual_seed(
            derive_seed(self.x.spec.experiment.seed, "prune", replicate, level))
        request = PruneRequest(self.model, base, self.x.layers, groups, level, generator,
                               state.init_state, self.x.data)
        mask = self.guard.call("criterion", rules.criterion.name, self.x.criterion, request)
        mask = mask.to(self.x.device)
        kept = mask.kept()
        wrong = [names for names, keep in groups if sum(kept[n] for n in names) != keep]
        if set(mask) != set(base) or not mask.is_subset_of(base) or wrong:
            raise LthError(f"criterion '{rules.criterion.name}' returned an invalid mask at level "
                           f"{level}: it must keep a subset of the current mask with the target "
                           f"count per group{f' (wrong: {wrong[0]})' if wrong else ''}")
        return mask
