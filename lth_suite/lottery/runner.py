"""The level loop: train, prune, rewind, retrain; ticket and controls; level-major.

All replicates finish a level before the next level starts, so every level's
summary (mean and spread over replicates) is logged as soon as it exists. Every
finished (replicate, level, branch) is a checkpoint: a resumed experiment restores
it from MLflow instead of training it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import mean

import torch

from .analyzers import as_analysis
from ..errors import Diverged, LthError
from .events import BranchResult, ExperimentFinished, LevelFinished
from .experiment import Experiment
from .guard import Guard, describe
from ..pruning.masks import Mask
from .population_runner import PopulationLevels
from .progress import Progress, SilentProgress
from ..pruning.targets import PruneRequest, random_mask_like, target_groups
from .checkpoints import REWIND_STATE, STATE, Checkpoints, Finished
from .rewinding import RewindContext, RewindPoint
from ..seeding import derive_seed
from ..spec.loading import to_yaml
from ..tracking import Tracker
from ..training.result import TrainResult, snapshot
from ..training.single import train


@dataclass
class Trained:
    """A trained ticket that a later level prunes."""

    mask: Mask
    state: dict[str, torch.Tensor]


@dataclass
class ReplicateState:
    """What later levels of one replicate need from earlier ones; nothing else is kept."""

    init_state: dict[str, torch.Tensor]
    captured_state: dict[str, torch.Tensor] | None
    dense: Trained  # level 0
    last: Trained  # the latest ticket


class LotteryRunner(PopulationLevels):
    """Runs one experiment end to end (or resumes one) and logs it through a ``Tracker``."""

    def __init__(self, experiment: Experiment, tracker: Tracker,
                 progress: Progress | None = None, resume: str | None = None,
                 mark_resumed: bool = True):
        self.x = experiment
        self.tracker = tracker
        self.progress = progress or SilentProgress()
        self.resume = resume
        self.mark_resumed = mark_resumed  # False when a launcher's driver finishes its own run
        self.checkpoints = Checkpoints(tracker, [])
        self.guard = Guard(experiment.plugins, tracker)
        self.states: dict[int, ReplicateState] = {}
        self.points: dict[int, RewindPoint] = {}  # this level's, per replicate
        self._init_pending: dict[int, dict[str, torch.Tensor]] = {}  # population, level 0
        self.model = experiment.build_model(experiment.spec.experiment.seed)

    def run(self) -> ExperimentFinished:
        """Every level of every replicate; runs end FAILED or KILLED if anything stops it."""
        spec = self.x.spec
        parent = self.open_parent()
        try:
            levels = [self._run_level(level, parent) for level in range(spec.pruning.levels + 1)]
            finished = ExperimentFinished(spec, self.x.hash, levels, parent,
                                          [level_summary(event) for event in levels])
            for name, analyzer in self.x.analyzers:
                output = self.guard.call("analyzer", name, analyzer.after_experiment, finished)
                self.tracker.log_metrics(parent, self._log_analysis(name, output, "experiment"))
            self.guard.hook("lth_experiment_finished", finished)
            self.tracker.log_metrics(parent, {"wall_time_s": self.progress.elapsed()})
            self.tracker.end_run(parent)
        except KeyboardInterrupt:
            self.tracker.end_all("KILLED", "interrupted")
            raise
        except BaseException as exc:
            self.tracker.end_all("FAILED", describe(exc))
            raise
        return finished

    def open_parent(self) -> str:
        """Create the parent run (or reopen it when resuming); its id."""
        if self.resume:
            self.checkpoints = Checkpoints(self.tracker, self.tracker.resume_experiment(
                self.resume, mark=self.mark_resumed))
            return self.resume
        spec = self.x.spec
        return self.tracker.start_experiment(
            experiment=spec.tracking.experiment or spec.experiment.name,
            run_name=f"{spec.experiment.name}-{self.x.hash[:8]}",
            params=spec.model_dump(mode="json"),
            tags={"lth_suite.spec_hash": self.x.hash,
                  "lth_suite.plugins": json.dumps(self.x.plugins.versions()),
                  "lth_suite.dataset_synthetic": str(self.x.data.info.synthetic).lower()},
            spec_yaml=to_yaml(spec),
        )

    def _run_level(self, level: int, parent: str) -> LevelFinished:
        restored_before = len(self.checkpoints)
        alive = [r for r in range(self.x.spec.experiment.replicates)
                 if level == 0 or r in self.states]  # a diverged ticket ends its replicate
        branches = self._population_or_none(level, alive)
        if branches is None:
            branches = [b for r in alive for b in self._unless_diverged(r, level)]
        if not any(b.branch == "ticket" for b in branches):
            raise LthError(f"every replicate's ticket diverged by level {level}: nothing to go on with")
        event = LevelFinished(self.x.spec, level, self.x.layers, branches,
                              {r: s.init_state for r, s in self.states.items()}, parent,
                              dict(self.points), self.x)
        replayed = self.resume and all(b.restored for b in branches) and restored_before
        if not replayed or not self.tracker.has_level_summary(parent, level):
            metrics = level_summary(event)
            for name, analyzer in self.x.analyzers:
                output = self.guard.call("analyzer", name, analyzer.after_level, event)
                metrics.update(self._log_analysis(name, output, f"level_{level:02d}"))
            self.tracker.log_metrics(parent, metrics, step=level)
            self.guard.hook("lth_level_finished", event)
        self.progress.level_done(level, level_summary(event))
        for branch in branches:  # bound memory: later levels need only ReplicateState
            branch.result.release_weights()
        return event

    def _population_or_none(self, level: int, replicates: list[int]) -> list[BranchResult] | None:
        """The level trained as a population, or None to train it one network at a time."""
        reason = self._population_reason()
        if reason is not None:
            choice = self.x.spec.training.population
            wanted = choice == "on" or (choice == "auto" and self.x.device.type == "cuda")
            if level == 0 and wanted:  # asked for, or expected on a GPU: say why not
                self.progress.note(f"population training off: {reason}")
            return None
        try:
            return self._population_level(level, replicates)
        except Diverged as exc:
            if self.x.spec.training.on_divergence == "stop":
                raise
            self.progress.note(f"population diverged at level {level} ({exc}): "
                               "training this level one network at a time")
            return None

    def _unless_diverged(self, replicate: int, level: int) -> list[BranchResult]:
        """The level's branches of one replicate; with ``on_divergence: skip`` a diverged
        control is left out and a diverged ticket ends the replicate."""
        try:
            return self._dense(replicate) if level == 0 else self._pruned(replicate, level)
        except Diverged as exc:
            if self.x.spec.training.on_divergence == "stop":
                raise
            self.states.pop(replicate, None)
            self.progress.note(f"replicate {replicate} stops at level {level}: {exc}")
            return []

    def _log_analysis(self, name: str, output: object, label: str) -> dict[str, float]:
        """Log an analyzer's table as JSON; its metrics, prefixed with its name."""
        analysis = as_analysis(output)
        if analysis.table:
            self.tracker.log_json(self.tracker.parent_id, {"rows": analysis.table},
                                  f"analysis/{name}/{label}.json")
        return {f"{name}/{k}": v for k, v in analysis.metrics.items()}

    def _dense(self, replicate: int) -> list[BranchResult]:
        seed = self.x.spec.experiment.seed
        init_state = snapshot(self.x.build_model(derive_seed(seed, "init", replicate)))
        capture = self.x.rewind.capture_iteration(self.x.config)
        self.points[replicate] = RewindPoint(init_state)
        done = self.checkpoints.get(replicate, 0, "ticket")
        if done is not None:
            dense = self._restore(done, replicate, 0, "ticket", weights=True)
            captured = done.state(REWIND_STATE) if capture is not None else None
        else:
            mask = Mask.dense(self.model, self.x.layers)
            with self.guard.child(replicate, 0, "ticket") as run:
                dense = self._train(run, replicate, 0, "ticket", mask, self.points[replicate],
                                    capture)
            captured = dense.result.captured.get(capture) if capture is not None else None
        trained = Trained(dense.mask, dense.result.state)
        self.states[replicate] = ReplicateState(init_state, captured, trained, trained)
        return [dense]

    def run_unit(self, parent_id: str, replicate: int, level: int, branch: str) -> str | None:
        """Train one (replicate, level, branch) of an experiment whose parent run exists.

        What it depends on (the replicate's earlier tickets) is read back from their
        checkpoints, so a unit can run in any process that reaches the tracking store:
        this is what launchers distribute. Returns the unit's child run id (None for a
        control skipped as diverged); a unit that already finished is not trained again.
        """
        self.checkpoints = Checkpoints(self.tracker, self.tracker.attach(parent_id))
        results = self._dense(replicate)
        for earlier in range(1, level):
            results = self._pruned(replicate, earlier, controls=())
        if level > 0:
            results = self._pruned(replicate, level,
                                   controls=() if branch == "ticket" else (branch,))
        return next((r.run_id for r in results if r.branch == branch), None)

    def _pruned(self, replicate: int, level: int,
                controls: tuple[str, ...] = ("reinit", "random_prune")) -> list[BranchResult]:
        spec, state = self.x.spec, self.states[replicate]
        oneshot = spec.pruning.strategy == "oneshot"
        source = state.dense if oneshot else state.last
        point = self.guard.call("rewind", spec.rewind.name, self.x.rewind, RewindContext(
            state.init_state, state.captured_state, source.state, self.x.config))
        self.points[replicate] = point
        done = self.checkpoints.get(replicate, level, "ticket")
        if done is not None:
            ticket = self._restore(done, replicate, level, "ticket", weights=True)
        else:
            with self.guard.child(replicate, level, "ticket") as run:  # pruning failures land here
                base = Mask.dense(self.model, self.x.layers) if oneshot else source.mask
                self.model.load_state_dict(source.state)
                mask = self._prune(replicate, level, base, state)
                ticket = self._train(run, replicate, level, "ticket", mask, point)
        state.last = Trained(ticket.mask, ticket.result.state)
        results = [ticket]
        seed = spec.experiment.seed
        if spec.controls.reinit and "reinit" in controls:
            results += self._control(replicate, level, "reinit", lambda: (
                ticket.mask, RewindPoint(snapshot(self.x.build_model(derive_seed(
                    seed, "reinit", replicate, level))), point.start_iteration, point.constant_lr)))
        if spec.controls.random_prune and "random_prune" in controls:
            generator = torch.Generator().manual_seed(derive_seed(seed, "random", replicate, level))
            results += self._control(replicate, level, "random_prune", lambda: (
                random_mask_like(ticket.mask, generator), point))
        return results

    def _control(self, replicate: int, level: int, branch: str, setup) -> list[BranchResult]:
        done = self.checkpoints.get(replicate, level, branch)
        if done is not None:
            return [self._restore(done, replicate, level, branch, weights=False)]
        try:
            with self.guard.child(replicate, level, branch) as run:
                mask, point = setup()
                return [self._train(run, replicate, level, branch, mask, point)]
        except Diverged as exc:
            if self.x.spec.training.on_divergence == "stop":
                raise
            self.progress.note(f"r{replicate}-level{level}-{branch} skipped: {exc}")
            return []

    def _restore(self, done: Finished, replicate: int, level: int, branch: str,
                 weights: bool) -> BranchResult:
        """A branch finished before the resume, read back from its child run."""
        result = TrainResult(state=done.state() if weights else {}, history=done.history())
        restored = BranchResult(replicate, level, branch, done.mask().to(self.x.device), result,
                                done.run_id, restored=True)
        self.progress.end(f"r{replicate}-level{level}-{branch} (restored)", restored.summary)
        return restored

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

    def _train(self, run: str, replicate: int, level: int, branch: str, mask: Mask,
               point: RewindPoint, capture: int | None = None) -> BranchResult:
        x = self.x
        self._log_density(run, mask)
        self.model.load_state_dict(point.state)
        tick = self.progress.begin(f"r{replicate}-level{level}-{branch}", point.start_iteration,
                                   x.config.total)
        result = train(self.model, mask, x.data, x.config, data_seed=self._data_seed(replicate),
                       start_iteration=point.start_iteration, constant_lr=point.constant_lr,
                       capture_at=frozenset() if capture is None else frozenset({capture}),
                       progress=tick)
        return self._finish(run, replicate, level, branch, mask, result, capture)

    def _data_seed(self, replicate: int) -> int:
        return derive_seed(self.x.spec.experiment.seed, "data", replicate)

    def _log_density(self, run: str, mask: Mask) -> None:
        self.tracker.log_params(run, {
            "density": round(mask.density(), 6),
            **{f"density.{k}": round(v, 6) for k, v in mask.layer_density().items()}})

    def _finish(self, run: str, replicate: int, level: int, branch: str, mask: Mask,
                result: TrainResult, capture: int | None) -> BranchResult:
        """Log a finished training into its child run: history, summary, checkpoint, model."""
        x, tracking = self.x, self.x.spec.tracking
        name = f"r{replicate}-level{level}-{branch}"
        branch_result = BranchResult(replicate, level, branch, mask, result, run)
        self.tracker.log_history(run, result.history)
        self.tracker.log_metrics(run, branch_result.summary)
        # A ticket's weights are the checkpoint later levels resume from: always kept.
        states = {STATE: result.state} if branch == "ticket" or tracking.log_state_dicts else {}
        if capture is not None:
            states[REWIND_STATE] = result.captured[capture]
        self.tracker.log_training_artifacts(run, mask, states)
        last_level = level == x.spec.pruning.levels
        if branch == "ticket" and (tracking.log_models == "all"
                                   or (tracking.log_models == "final" and last_level)):
            self.model.load_state_dict(result.state)
            self.tracker.log_model(run, self.model, f"ticket-r{replicate}-level{level}",
                                   x.data.x_test[:2], tracking.model_format)
        self.progress.end(name, branch_result.summary)
        return branch_result


def level_summary(event: LevelFinished) -> dict[str, float]:
    """Density and each branch's accuracy at one level: mean, and min/max over replicates."""
    tickets = event.of("ticket")
    row: dict[str, float] = {"level": float(event.level),
                             "density": mean(t.mask.density() for t in tickets)}
    for branch in sorted({b.branch for b in event.branches}):
        results = event.of(branch)
        for key in ("early_stop_test_accuracy", "final_test_accuracy", "early_stop_iteration"):
            values = [r.summary[key] for r in results]
            row[f"{branch}/{key}"] = mean(values)
            if len(values) > 1:
                row[f"{branch}/{key}_min"], row[f"{branch}/{key}_max"] = min(values), max(values)
    return row


def run_experiment(spec, plugins, tracking_uri: str, progress: Progress | None = None,
                   resume: str | None = None) -> ExperimentFinished:
    """Prepare and run (or resume) a validated spec, logging to ``tracking_uri``: the Python API."""
    from .experiment import prepare
    from ..tracking import open_tracker

    experiment = prepare(spec, plugins)
    return LotteryRunner(experiment, open_tracker(tracking_uri), progress, resume).run()
