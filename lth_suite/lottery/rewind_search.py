"""Choosing the rewind point from the network (``rewind: auto``).

Frankle et al. (ICML 2020) found that matching tickets appear once the network is
stable to SGD noise: two copies trained from the rewind point with different data
orders end in one linearly connected basin. After a replicate's dense training, this
module measures that at the rewind's candidate points, in order, and stops at the
first stable one (error barrier under the threshold): a search, not a sweep, so the
candidates after it cost nothing. When none is stable the last candidate is taken, and
the output says so. The replicates still searching train their copies together: as one
population where the trainer allows it, else side by side on the local launcher's
workers when it has them, else one after the other.

The choice is part of the experiment's state: it is written to the parent run (a tag
per replicate, the curve as JSON and metrics) before any pruned level trains, and a
resumed experiment, or a launcher's unit in another process, reads it back instead of
measuring again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from ..pruning.masks import Mask
from ..seeding import derive_seed
from ..tracking import Tracker
from ..tracking.names import (
    rewind_search_artifact,
    rewind_search_metric,
    rewind_search_tag,
)
from ..training.connectivity import barriers, copy_config, linear_path, train_copies
from .experiment import Experiment
from .planner import Planner
from .progress import Progress
from .rewinding import SearchedRewind, State, searched

if TYPE_CHECKING:
    from .trainer import TrainingPool

Paths = dict[int, list[dict[str, float]]]  # replicate -> rows (alpha, error, loss) of its path


@dataclass
class Choice:
    """One replicate's rewind point and the instability curve it was chosen from."""

    replicate: int
    chosen: int  # iteration
    stable: bool  # False: no candidate was under the threshold, the last one is taken
    threshold: float
    candidates: list[int]
    # one row per measured candidate: iteration, barrier, barrier_linear, errors on the path
    curve: list[dict] = field(default_factory=list)
    trainings: int = 0  # extra trainings this replicate's measurement took
    seconds: float = 0.0  # wall time of the search that measured it (shared by its replicates)
    restored: bool = False  # read back from the store, not measured here

    @classmethod
    def from_json(cls, data: dict) -> Choice:
        """The JSON artifact back as a choice."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)

    def line(self) -> str:
        """One line of output: the curve and the choice."""
        measured = ", ".join(f"{row['iteration']}it {100 * row['barrier']:.1f}%" for row in self.curve)
        cost = ("chosen before, not measured again" if self.restored
                else f"{self.trainings} trainings, {self.seconds:.1f} s")
        verdict = (f"rewinds to {self.chosen}it (barrier under {100 * self.threshold:g}%)"
                   if self.stable else
                   f"no candidate is stable (barrier under {100 * self.threshold:g}%): rewinds "
                   f"to the last, {self.chosen}it")
        return f"r{self.replicate}: instability {measured or '(not logged)'} -> {verdict}; {cost}"


@dataclass(frozen=True)
class CopyTraining:
    """One copy of a replicate's dense network trained from a candidate point with its own
    data order: what a worker of the pool trains for the search (plain data: it pickles)."""

    name: str
    start: State
    mask: Mask
    seed: int
    candidate: int
    iterations: int | None  # the rewind's budget past the candidate, None: to the end

    def run(self, experiment: Experiment, model: torch.nn.Module) -> State:
        """Train the copy in ``model``; its final weights."""
        config = copy_config(experiment.config, self.candidate, self.iterations)
        return train_copies(model, [self.start], [self.mask], [self.seed], experiment.data,
                            config, start_iteration=self.candidate)[0]


def on_workers(pool: TrainingPool, experiment: Experiment,
               copies: Sequence[CopyTraining]) -> list[State]:
    """The copies trained side by side on the pool's workers; their weights, in order."""
    ends: list[State] = []
    for _, outcome in pool.train(experiment, copies, lambda *told: None):  # type: ignore[arg-type]
        if isinstance(outcome, BaseException):
            raise outcome
        ends.append(outcome)
    return ends


class RewindSearch:
    """Chooses each replicate's rewind point for a searched rewind, once."""

    def __init__(self, experiment: Experiment, model: torch.nn.Module, tracker: Tracker,
                 progress: Progress, population: Callable[[], bool],
                 pool: TrainingPool | None = None):
        self.experiment, self.model, self.tracker = experiment, model, tracker
        self.progress = progress
        self.population = population  # asked only when copies must train
        self.pool = pool  # the launcher's workers, which train the copies side by side
        self.rewind: SearchedRewind | None = searched(experiment.rewind)

    def choose(self, planner: Planner, replicates: list[int], parent: str) -> list[Choice]:
        """The rewind point of each replicate that has none yet: read back from the parent
        run, else measured and written there; handed to the planner."""
        if self.rewind is None:
            return []
        todo = [r for r in replicates if planner.states[r].captured_iteration is None]
        if not todo:
            return []
        choices = {r: choice for r in todo if (choice := self.stored(parent, r)) is not None}
        pending = [r for r in todo if r not in choices]
        if pending:
            measured = self.measure(planner, pending)
            for choice in measured.values():
                self.write(parent, choice)
            choices.update(measured)
        say = getattr(self.progress, "info", self.progress.note)  # a plain line where it can
        for r in todo:
            planner.choose(r, choices[r].chosen)
            say(f"rewind point {choices[r].line()}")
        fresh = [choices[r] for r in pending]
        if fresh:
            say(self.cost_line(fresh))
        return [choices[r] for r in todo]

    def measure(self, planner: Planner, replicates: list[int]) -> dict[int, Choice]:
        """Measure the candidates in order for every replicate still searching; each stops
        at its first stable candidate."""
        rewind, config = self.rewind, self.experiment.config
        assert rewind is not None
        candidates = rewind.candidate_iterations(config)
        choices = {r: Choice(r, candidates[-1], False, rewind.threshold, candidates)
                   for r in replicates}
        searching = list(replicates)
        began = time.perf_counter()
        for candidate in candidates:
            if not searching:
                break
            paths = self.paths(planner, searching, candidate)
            for r in list(searching):
                rows = paths[r]
                errors = [row["error"] for row in rows]
                measured = barriers(errors, [row["alpha"] for row in rows])
                choices[r].curve.append({"iteration": candidate, **measured, "errors": errors})
                choices[r].trainings += 2
                if measured["barrier"] < rewind.threshold:
                    choices[r].chosen, choices[r].stable = candidate, True
                    searching.remove(r)
        seconds = time.perf_counter() - began
        for choice in choices.values():
            choice.seconds = seconds
        return choices

    def paths(self, planner: Planner, replicates: list[int], candidate: int) -> Paths:
        """Two copies of each replicate's dense network train from ``candidate`` with
        different data orders (as one population when the trainer allows, else on the
        pool's workers when there are some); the test error along each pair's linear path."""
        rewind, experiment = self.rewind, self.experiment
        assert rewind is not None
        budget = rewind.budget(experiment.config)
        config = copy_config(experiment.config, candidate, budget)
        seed = experiment.spec.experiment.seed
        starts, masks, seeds, names = [], [], [], []
        for r in replicates:
            state = planner.states[r]
            starts += [state.control_captured[candidate]] * 2
            masks += [state.dense.mask] * 2
            seeds += [derive_seed(seed, "rewind_search", r, candidate, copy) for copy in (0, 1)]
            names += [f"r{r}-rewind-search-{candidate}it-copy{copy}" for copy in (0, 1)]
        population = self.population()
        if self.pool is not None and not population:
            ends = on_workers(self.pool, experiment, [
                CopyTraining(*job, candidate, budget)
                for job in zip(names, starts, masks, seeds, strict=True)])
        else:
            ends = train_copies(self.model, starts, masks, seeds, experiment.data, config,
                                start_iteration=candidate, population=population)
        return {r: linear_path(self.model, ends[2 * i], ends[2 * i + 1], rewind.points,
                               experiment.data, experiment.config)
                for i, r in enumerate(replicates)}

    def stored(self, parent: str, replicate: int) -> Choice | None:
        """The choice the parent run holds for ``replicate``, if it was made before."""
        tag = self.tracker.reader.require(parent).tags.get(rewind_search_tag(replicate))
        if tag is None:
            return None
        payload = self.tracker.reader.artifact_bytes(parent, rewind_search_artifact(replicate))
        rewind = self.rewind
        assert rewind is not None
        choice = (Choice.from_json(json.loads(payload)) if payload is not None else
                  Choice(replicate, int(tag), True, rewind.threshold,
                         rewind.candidate_iterations(self.experiment.config)))
        choice.chosen, choice.restored = int(tag), True
        return choice

    def write(self, parent: str, choice: Choice) -> None:
        """The curve (JSON and metrics), then the tag that marks the choice as made."""
        r = choice.replicate
        self.tracker.log_json(parent, asdict(choice), rewind_search_artifact(r))
        for row in choice.curve:
            self.tracker.log_metrics(parent, {rewind_search_metric(r, "barrier"): row["barrier"],
                                              rewind_search_metric(r, "barrier_linear"):
                                                  row["barrier_linear"]}, step=row["iteration"])
        self.tracker.log_metrics(parent, {
            rewind_search_metric(r, "chosen_iteration"): choice.chosen,
            rewind_search_metric(r, "trainings"): choice.trainings,
            rewind_search_metric(r, "seconds"): choice.seconds})
        self.tracker.set_tag(parent, rewind_search_tag(r), str(choice.chosen))

    def cost_line(self, measured: list[Choice]) -> str:
        """What the search cost, beside a hand sweep over the same candidates."""
        experiment = self.experiment
        trainings = sum(choice.trainings for choice in measured)
        candidates = len(measured[0].candidates)
        per_run = experiment.trainings()
        return (f"rewind search: {trainings} extra trainings in {measured[0].seconds:.1f} s "
                f"(a hand sweep over the {candidates} candidates: {candidates} IMP runs of "
                f"{per_run} trainings, {candidates * per_run} in all)")
