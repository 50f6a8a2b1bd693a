"""The level loop: train, prune, rewind, retrain; ticket and controls; level-major.

Each level is planned (``Planner``), trained (``Trainer``: one at a time or as one
population) and recorded (``Recorder``). All replicates finish a level before the next
starts, so every level's summary over replicates is logged as soon as it exists. A
resumed experiment restores every finished training instead of training it again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import closing

from ..errors import Diverged, LthError
from ..tracking import Tracker
from ..tracking.names import TICKET, branch_order
from ..training.result import TrainResult
from .checkpoints import Checkpoints
from .child_runs import Guard
from .events import BranchResult, ExperimentFinished, LevelFinished
from .experiment import Experiment
from .planner import Planned, Planner
from .progress import Progress, SilentProgress
from .recorder import Recorder, level_summary
from .rewind_search import RewindSearch
from .trainer import Trainer, TrainingPool


class LotteryRunner:
    """Runs one experiment end to end (or resumes one) and logs it through a ``Tracker``."""

    def __init__(self, experiment: Experiment, tracker: Tracker,
                 progress: Progress | None = None, resume: str | None = None,
                 mark_resumed: bool = True, pool: TrainingPool | None = None,
                 replaying: bool = False):
        self.experiment, self.tracker = experiment, tracker
        self.progress = progress or SilentProgress()
        self.resume = resume
        self.mark_resumed = mark_resumed  # False when a launcher's driver finishes its own run
        # Replaying levels other processes trained: read back one network at a time, and
        # build a trainer only if a training left to this step must run after all.
        self.replaying, self.pool = replaying, pool
        self.model = experiment.build_model(experiment.spec.experiment.seed)
        self.guard = Guard(experiment.plugins, tracker)
        self.recorder = Recorder(experiment, tracker, self.guard, self.progress, self.model)
        self._trainer = None if replaying else self._new_trainer()
        self.planner = Planner(experiment, self.model, self.guard, Checkpoints(),
                               self.recorder.restore)
        self.rewind_search = RewindSearch(experiment, self.model, tracker, self.progress,
                                          lambda: self.trainer.population, pool)
        self.levels: list[LevelFinished] = []

    @property
    def trainer(self) -> Trainer:
        """What trains the level's planned networks (built on first need when replaying)."""
        if self._trainer is None:
            self._trainer = self._new_trainer()
        return self._trainer

    def _new_trainer(self) -> Trainer:
        return Trainer(self.experiment, self.model, self.progress, self.recorder.evaluated,
                       self.pool)

    def run(self) -> ExperimentFinished:
        """Every level of every replicate; runs end FAILED or KILLED if anything stops it."""
        self.open_parent()
        try:
            for level in range(self.experiment.spec.pruning.levels + 1):
                self.run_level(level)
            return self.finish()
        except BaseException as exc:
            self.recorder.end_all(exc)
            raise

    def open_parent(self) -> str:
        """Create the parent run (or reopen it when resuming); its id."""
        self.planner.checkpoints = self.recorder.open_parent(self.resume, self.mark_resumed)
        return self.recorder.parent

    def run_level(self, level: int) -> LevelFinished:
        """Train (or restore) every replicate and branch of one level, then record it."""
        self._choose_rewind(level, self.planner.alive(level))
        branches = self._train_level(level, self.planner.alive(level))
        if not any(b.branch == TICKET for b in branches):
            raise LthError(f"every replicate's ticket diverged by level {level}: nothing to go on with")
        event = LevelFinished(self.experiment.spec, level, self.experiment.layers, branches,
                              {r: s.init_state for r, s in self.planner.states.items()},
                              self.recorder.parent, dict(self.planner.points), self.experiment)
        self.recorder.level_finished(event, resumed=bool(self.resume))
        for branch in branches:  # bound memory: later levels need only the planner's state
            branch.result.release_weights()
        self.levels.append(event)
        return event

    def finish(self) -> ExperimentFinished:
        """The finished experiment: analyses, hook, and the parent run ended FINISHED."""
        experiment = self.experiment
        finished = ExperimentFinished(experiment.spec, experiment.hash, self.levels,
                                      self.recorder.parent,
                                      [level_summary(event) for event in self.levels])
        self.recorder.experiment_finished(finished)
        return finished

    def run_unit(self, parent_id: str, replicate: int, level: int, branch: str) -> str | None:
        """Train one (replicate, level, branch) of an experiment whose parent run exists.

        What it depends on (the replicate's earlier tickets) is read back from their
        checkpoints, so a unit can run in any process that reaches the tracking store:
        this is what launchers distribute. Returns the unit's child run id (None for a
        training skipped as diverged); a unit that already finished is not trained again.
        """
        self.tracker.attach(parent_id)
        self.planner.checkpoints = Checkpoints(self.tracker.reader, parent_id)
        # A level needs only the replicate's dense ticket and the latest one (see
        # ``ReplicateState``): two restores per unit, not one per earlier level.
        for earlier in sorted({0, level - 1}) if level else []:
            self._choose_rewind(earlier, [replicate])
            self._replicate(replicate, earlier, controls=())
        self._choose_rewind(level, [replicate])
        results = self._replicate(replicate, level, () if branch == TICKET else (branch,))
        return next((r.run_id for r in results if r.branch == branch), None)

    def _choose_rewind(self, level: int, replicates: list[int]) -> None:
        """Before a pruned level: a searched rewind's point for each replicate that has
        none yet (read back from the store, or measured once)."""
        alive = [r for r in replicates if r in self.planner.states]
        if level and alive:
            self.rewind_search.choose(self.planner, alive, self.recorder.parent)

    def _train_level(self, level: int, replicates: list[int]) -> list[BranchResult]:
        """The level's results, in replicate and branch order."""
        if not self.replaying and (self.trainer.population or self.trainer.pool is not None):
            try:
                return self._train_level_at_once(level, replicates)
            except Diverged as exc:
                if self.experiment.spec.training.on_divergence == "stop":
                    raise
                self.progress.note(f"population diverged at level {level} ({exc}): "
                                   "training this level one network at a time")
        return [b for replicate in replicates for b in self._replicate(replicate, level)]

    def _train_level_at_once(self, level: int, replicates: list[int]) -> list[BranchResult]:
        """Plan every replicate's trainings, train the planned ones as one population.

        A dynamically trained level 0 goes in two populations: its controls need the
        masks the tickets end with.
        """
        plans = [self.planner.plan(replicate, level) for replicate in replicates]
        if level == 0 and self.experiment.dynamic is not None:
            results = self._train_as_one(next(plan) for plan in plans)
            results += self._train_as_one(item for replicate, plan in zip(replicates, plans)
                                        if replicate in self.planner.states for item in plan)
        else:
            results = self._train_as_one(item for plan in plans for item in plan)
        controls = self.experiment.controls()
        return sorted(results, key=lambda b: (b.replicate, branch_order(b.branch, controls)))

    def _train_as_one(self, items: Iterable[Planned | BranchResult]) -> list[BranchResult]:
        """Train the planned items as one population; restored ones come back as they are."""
        if self.trainer.pool is not None:
            return self._train_on_workers(list(items))
        results: list[BranchResult] = []
        planned: list[Planned] = []
        try:
            for item in items:
                (planned if isinstance(item, Planned) else results).append(item)
            for item in planned:
                self.recorder.start(item)
            trained = self.trainer.train_as_population(planned) if planned else []
        except BaseException as exc:
            self.recorder.abandon(planned, exc)
            raise
        results += [self.recorder.finish(item, result)
                    for item, result in zip(planned, trained, strict=True)]
        for result in results:
            self.planner.keep(result)
        return results

    def _train_on_workers(self, items: list[Planned | BranchResult]) -> list[BranchResult]:
        """Train the planned items side by side on the pool's workers, recording each in
        the items' order as it comes back; ``on_divergence`` as one at a time, except
        that the controls of a replicate whose ticket diverged were already set going:
        their runs end FAILED instead of never starting."""
        results = [item for item in items if isinstance(item, BranchResult)]
        planned = [item for item in items if isinstance(item, Planned)]
        for result in results:
            self.planner.keep(result)
        running = list(planned)
        stopped: dict[int, Diverged] = {}  # replicates whose ticket diverged here
        try:
            for item in planned:
                self.recorder.start(item)
            # Closed however this stops, so that the trainings still running stop too.
            with closing(self.trainer.train_on_workers(planned)) as trainings:
                for item, trained in trainings:
                    result = self._landed(item, trained, stopped)
                    running.remove(item)
                    if result is not None:
                        results.append(result)
        except BaseException as exc:
            self.recorder.abandon(running, exc)
            raise
        return results

    def _landed(self, item: Planned, trained: TrainResult | BaseException,
                stopped: dict[int, Diverged]) -> BranchResult | None:
        """Record a training that came back from a worker; None when it diverged and is
        skipped (or belongs to a replicate whose ticket diverged)."""
        if isinstance(trained, BaseException) or item.replicate in stopped:
            diverged = stopped.get(item.replicate, trained)
            if not isinstance(diverged, Diverged) or self.experiment.spec.training.on_divergence == "stop":
                raise diverged  # its run ends with the others still open
            self.recorder.abandon([item], diverged)
            self._skipped(item, diverged, stopped)
            return None
        result = self.recorder.finish(item, trained)
        self.planner.keep(result)
        return result

    def _skipped(self, item: Planned, exc: Diverged, stopped: dict[int, Diverged]) -> None:
        """Note a diverged training; a diverged ticket ends its replicate."""
        if item.branch != TICKET:
            if item.replicate not in stopped:
                self.progress.note(f"{item.name} skipped: {exc}")
            return
        stopped[item.replicate] = exc
        self.planner.drop(item.replicate)
        self.progress.note(f"replicate {item.replicate} stops at level {item.level}: {exc}")

    def _replicate(self, replicate: int, level: int,
                   controls: Collection[str] | None = None) -> list[BranchResult]:
        """One replicate's trainings of a level, one network at a time. With
        ``on_divergence: skip`` a diverged control is left out and a diverged ticket
        ends the replicate."""
        results: list[BranchResult] = []
        for item in self.planner.plan(replicate, level, controls):
            if isinstance(item, BranchResult):
                self.planner.keep(item)
                results.append(item)
                continue
            try:
                self.recorder.start(item)
                trained = self.trainer.train_alone(item)
            except BaseException as exc:
                self.recorder.abandon([item], exc)
                if not isinstance(exc, Diverged) or self.experiment.spec.training.on_divergence == "stop":
                    raise
                self._skipped(item, exc, {})
                if item.branch == TICKET:
                    return []
                continue
            result = self.recorder.finish(item, trained)
            self.planner.keep(result)
            results.append(result)
        return results


def finish_from_store(experiment: Experiment, tracker: Tracker, parent_id: str,
                      progress: Progress | None = None) -> ExperimentFinished:
    """Finish an experiment whose units other processes trained into ``parent_id``: every
    level is read back from its checkpoints and recorded (summaries, analyzers, hooks), a
    training left to this step (one skipped as diverged) is tried here, and the parent
    run ends FINISHED. No trainer is built unless such a training must run."""
    return LotteryRunner(experiment, tracker, progress, resume=parent_id, mark_resumed=False,
                         replaying=True).run()
