"""A level's networks trained as one population (``training.population``).

Every branch of every replicate at one level is independent once the level's masks are
known, so they train together: the ticket masks are computed first (each inside its own
child run, so a failing criterion is recorded there), then one vectorised training, then
each member is logged into its child run exactly as a sequential training would be.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch

from .events import BRANCHES, BranchResult
from ..pruning.masks import Mask
from ..training.population import Member, train_population, why_not_batchable
from ..pruning.targets import random_mask_like
from .checkpoints import REWIND_STATE
from .rewinding import RewindContext, RewindPoint
from ..seeding import derive_seed
from ..training.result import snapshot


@dataclass
class Planned:
    """One branch waiting for the population to train."""

    replicate: int
    branch: str
    run: str
    mask: Mask
    point: RewindPoint
    capture: int | None = None


class PopulationLevels:
    """Mixed into ``LotteryRunner``: the population path of a level."""

    def _population_reason(self) -> str | None:
        """Why population training is off for this experiment, or None when it is on."""
        choice = self.x.spec.training.population
        if choice == "off":
            return "training.population is off"
        if choice == "auto" and self.x.device.type != "cuda":
            return "on the CPU sequential training is measured to be faster"
        training = self.x.spec.training
        if training.compile or training.channels_last:
            option = "compile" if training.compile else "channels_last"
            return f"training.{option} applies to networks trained one at a time"
        blocker = why_not_batchable(self.model)
        if blocker:
            return f"{self.x.spec.model.name}: {blocker}"
        return None

    def _population_level(self, level: int, replicates: list[int]) -> list[BranchResult]:
        """Plan every branch of the level, train the planned ones together, log each."""
        results: list[BranchResult] = []
        with ExitStack() as runs:
            planned = [p for r in replicates
                       for p in self._plan_replicate(runs, r, level, results)]
            if planned:
                point = planned[0].point
                tick = self.progress.begin(f"level {level}: population of {len(planned)}",
                                           point.start_iteration, self.x.config.total)
                members = [Member(p.point.state, p.mask, self._data_seed(p.replicate),
                                  frozenset() if p.capture is None else frozenset({p.capture}))
                           for p in planned]
                trained = train_population(self.model, members, self.x.data, self.x.config,
                                           start_iteration=point.start_iteration,
                                           constant_lr=point.constant_lr, progress=tick)
                for plan, result in zip(planned, trained, strict=True):
                    results.append(self._finish(plan.run, plan.replicate, level, plan.branch,
                                                plan.mask, result, plan.capture))
        for result in results:
            self._after_population(result)
        return sorted(results, key=lambda b: (b.replicate, BRANCHES.index(b.branch)))

    def _plan_replicate(self, runs: ExitStack, replicate: int, level: int,
                        results: list[BranchResult]) -> list[Planned]:
        spec, seed = self.x.spec, self.x.spec.experiment.seed
        if level == 0:
            init_state = snapshot(self.x.build_model(derive_seed(seed, "init", replicate)))
            self.points[replicate] = RewindPoint(init_state)
            self._init_pending[replicate] = init_state
            done = self.checkpoints.get(replicate, 0, "ticket")
            if done is not None:
                results.append(self._restore(done, replicate, 0, "ticket", weights=True))
                return []
            run = runs.enter_context(self.guard.child(replicate, 0, "ticket"))
            self._log_density(run, Mask.dense(self.model, self.x.layers))
            return [Planned(replicate, "ticket", run, Mask.dense(self.model, self.x.layers),
                            self.points[replicate], self.x.rewind.capture_iteration(self.x.config))]
        state = self.states[replicate]
        oneshot = spec.pruning.strategy == "oneshot"
        source = state.dense if oneshot else state.last
        point = self.guard.call("rewind", spec.rewind.name, self.x.rewind, RewindContext(
            state.init_state, state.captured_state, source.state, self.x.config))
        self.points[replicate] = point
        planned = []
        done = self.checkpoints.get(replicate, level, "ticket")
        if done is not None:
            restored = self._restore(done, replicate, level, "ticket", weights=True)
            results.append(restored)
            ticket_mask = restored.mask
        else:
            run = runs.enter_context(self.guard.child(replicate, level, "ticket"))
            base = Mask.dense(self.model, self.x.layers) if oneshot else source.mask
            self.model.load_state_dict(source.state)
            ticket_mask = self._prune(replicate, level, base, state)
            self._log_density(run, ticket_mask)
            planned.append(Planned(replicate, "ticket", run, ticket_mask, point))
        controls = []
        if spec.controls.reinit:
            fresh = snapshot(self.x.build_model(derive_seed(seed, "reinit", replicate, level)))
            controls.append(("reinit", lambda: (ticket_mask, RewindPoint(
                fresh, point.start_iteration, point.constant_lr))))
        if spec.controls.random_prune:
            generator = torch.Generator().manual_seed(derive_seed(seed, "random", replicate, level))
            controls.append(("random_prune", lambda: (random_mask_like(ticket_mask, generator),
                                                      point)))
        for branch, setup in controls:
            done = self.checkpoints.get(replicate, level, branch)
            if done is not None:
                results.append(self._restore(done, replicate, level, branch, weights=False))
                continue
            run = runs.enter_context(self.guard.child(replicate, level, branch))
            mask, start = setup()
            self._log_density(run, mask)
            planned.append(Planned(replicate, branch, run, mask, start))
        return planned

    def _after_population(self, result: BranchResult) -> None:
        """Keep what later levels need, as the sequential path does."""
        from .runner import ReplicateState, Trained

        if result.branch != "ticket":
            return
        trained = Trained(result.mask, result.result.state)
        if result.level == 0:
            capture = self.x.rewind.capture_iteration(self.x.config)
            captured = None
            if capture is not None:
                captured = (result.result.captured.get(capture) if not result.restored
                            else self.checkpoints.get(result.replicate, 0, "ticket").state(REWIND_STATE))
            init_state = self._init_pending.pop(result.replicate)
            self.states[result.replicate] = ReplicateState(init_state, captured, trained, trained)
        else:
            self.states[result.replicate].last = trained
