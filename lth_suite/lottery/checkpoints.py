"""Resuming an experiment from what its parent run's finished children hold."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
import yaml

from ..errors import LthError
from ..pruning.masks import Mask
from ..spec.model import ExperimentSpec
from ..spec.loading import canonical, spec_hash
from ..tracking import Tracker, flatten

MASK, STATE, REWIND_STATE = "mask.npz", "state_dict.pt", "rewind_state.pt"
HISTORY_KEYS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")

BranchKey = tuple[int, int, str]  # (replicate, level, branch)


@dataclass(frozen=True)
class Finished:
    """One finished (replicate, level, branch) child run: a checkpoint."""

    run_id: str
    tracker: Tracker

    def mask(self) -> Mask:
        """The branch's mask."""
        return Mask.unpack(self.tracker.read_artifact(self.run_id, MASK))

    def state(self, name: str = STATE) -> dict[str, torch.Tensor]:
        """A state dict it logged: the trained weights, or the rewind-point weights."""
        payload = self.tracker.read_artifact(self.run_id, name)
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)

    def history(self) -> list[dict[str, float]]:
        """Its evaluation rows, as logged."""
        return self.tracker.metric_rows(self.run_id, HISTORY_KEYS)


class Checkpoints:
    """The finished branches of a parent run, by (replicate, level, branch)."""

    def __init__(self, tracker: Tracker, children: list[Any]):
        self.done: dict[BranchKey, Finished] = {}
        for child in children:
            params = child.data.params
            key = (int(params["replicate"]), int(params["level"]), params["branch"])
            self.done[key] = Finished(child.info.run_id, tracker)

    def get(self, replicate: int, level: int, branch: str) -> Finished | None:
        """The checkpoint of a branch, if it finished."""
        return self.done.get((replicate, level, branch))

    def __len__(self) -> int:
        return len(self.done)


def spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'field: old -> new' for every field that differs between two canonical specs."""
    flat_old, flat_new = flatten(old), flatten(new)
    return [f"{key}: {flat_old.get(key, '(absent)')} -> {flat_new.get(key, '(absent)')}"
            for key in sorted(set(flat_old) | set(flat_new))
            if flat_old.get(key) != flat_new.get(key)]


def check_same_spec(tracker: Tracker, parent_id: str, spec: ExperimentSpec, registry: Any) -> None:
    """Refuse to resume ``parent_id`` with a spec whose hash differs; name the fields."""
    parent = tracker.get_run(parent_id)
    if parent.data.tags.get("lth_suite.spec_hash") == spec_hash(spec):
        return
    from ..spec.loading import build_spec

    logged = yaml.safe_load(tracker.read_artifact(parent_id, "spec.yaml").decode())
    differences = spec_differences(canonical(build_spec(logged, registry)), canonical(spec))
    raise LthError(f"refusing to resume run {parent_id}: the spec differs in "
                   f"{'; '.join(differences) or 'its hash'}")


def find_resumable(tracker: Tracker, spec: ExperimentSpec, registry: Any) -> str | None:
    """The newest unfinished parent run of this experiment, if any (same spec required)."""
    experiment = spec.tracking.experiment or spec.experiment.name
    parents = tracker.unfinished_parents(experiment)
    same = [p for p in parents if p.data.tags.get("lth_suite.spec_hash") == spec_hash(spec)]
    if same:
        return same[0].info.run_id
    if parents:
        check_same_spec(tracker, parents[0].info.run_id, spec, registry)
    return None
