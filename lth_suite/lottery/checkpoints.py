"""What a resumed experiment finds in the store: its finished trainings, and its spec.

A finished (replicate, level, branch) child run is a checkpoint: the planner restores
it instead of training it again (open_lth's "if it exists, return").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import yaml

from ..errors import LthError
from ..pruning.masks import Mask
from ..spec.loading import canonical, spec_hash
from ..spec.sections import ExperimentSpec
from ..tracking import StoreReader, flatten
from ..tracking.names import (
    BRANCH_PARAM,
    HISTORY_KEYS,
    LEVEL_PARAM,
    MASK_ARTIFACT,
    REPLICATE_PARAM,
    REWIND_STATE_ARTIFACT,
    SPEC_ARTIFACT,
    SPEC_HASH_TAG,
    STATE_ARTIFACT,
    TASK_HISTORY_KEYS,
)
from ..tracking.stored_weights import load_mask, load_state

BranchKey = tuple[int, int, str]  # (replicate, level, branch)


@dataclass(frozen=True)
class Finished:
    """One finished (replicate, level, branch) child run: a checkpoint."""

    run_id: str
    reader: StoreReader

    def mask(self) -> Mask:
        """The branch's mask."""
        payload = self.reader.read_artifact(self.run_id, MASK_ARTIFACT)
        return load_mask(payload, self.run_id, MASK_ARTIFACT)

    def state(self, name: str = STATE_ARTIFACT) -> dict[str, torch.Tensor]:
        """A state dict it logged: the trained weights, or the rewind-point weights."""
        payload = self.reader.read_artifact(self.run_id, name)
        return load_state(payload, self.run_id, name)

    def rewind_state(self) -> dict[str, torch.Tensor]:
        """The dense training's weights at the rewind's capture iteration."""
        return self.state(REWIND_STATE_ARTIFACT)

    def history(self) -> list[dict[str, float]]:
        """Its evaluation rows, as logged."""
        return self.reader.metric_rows(self.run_id, (*HISTORY_KEYS, *TASK_HISTORY_KEYS))


class Checkpoints:
    """The finished branches of a parent run, by (replicate, level, branch)."""

    def __init__(self, reader: StoreReader | None = None, parent_id: str | None = None):
        self.done: dict[BranchKey, Finished] = {}
        if reader is None or parent_id is None:
            return  # a new experiment: nothing finished yet
        for child in reader.finished_children(parent_id):
            self.done[key_of(child.params)] = Finished(child.run_id, reader)

    def get(self, replicate: int, level: int, branch: str) -> Finished | None:
        """The checkpoint of a branch, if it finished."""
        return self.done.get((replicate, level, branch))

    def __len__(self) -> int:
        return len(self.done)


def key_of(params: dict[str, str]) -> BranchKey:
    """(replicate, level, branch) from a child run's params."""
    return int(params[REPLICATE_PARAM]), int(params[LEVEL_PARAM]), params[BRANCH_PARAM]


def spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'field: old -> new' for every field that differs between two canonical specs."""
    flat_old, flat_new = flatten(old), flatten(new)
    return [f"{key}: {flat_old.get(key, '(absent)')} -> {flat_new.get(key, '(absent)')}"
            for key in sorted(set(flat_old) | set(flat_new))
            if flat_old.get(key) != flat_new.get(key)]


def logged_spec(reader: StoreReader, parent_id: str) -> dict[str, Any]:
    """The spec a parent run logged, as the YAML data it was written from."""
    return yaml.safe_load(reader.read_artifact(parent_id, SPEC_ARTIFACT).decode())


def check_same_spec(reader: StoreReader, parent_id: str, spec: ExperimentSpec,
                    registry: Any) -> None:
    """Refuse to resume ``parent_id`` with a spec whose hash differs; name the fields."""
    if reader.require(parent_id).tags.get(SPEC_HASH_TAG) == spec_hash(spec):
        return
    from ..spec.loading import build_spec

    logged = build_spec(logged_spec(reader, parent_id), registry)
    differences = spec_differences(canonical(logged), canonical(spec))
    raise LthError(f"refusing to resume run {parent_id}: the spec differs in "
                   f"{'; '.join(differences) or 'its hash'}")


def find_resumable(reader: StoreReader, spec: ExperimentSpec, registry: Any) -> str | None:
    """The newest unfinished parent run of this experiment, if any (same spec required)."""
    experiment = spec.tracking.experiment or spec.experiment.name
    parents = reader.unfinished_parents(experiment)
    same = [p for p in parents if p.tags.get(SPEC_HASH_TAG) == spec_hash(spec)]
    if same:
        return same[0].run_id
    if parents:
        check_same_spec(reader, parents[0].run_id, spec, registry)
    return None
