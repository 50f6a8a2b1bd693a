"""Reading finished experiments back from MLflow, for reports, export and sweeps."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..errors import TrackingError
from .journal import keep_journal
from .names import ITERATION, PARENT_TAG, SPEC_HASH_TAG
from .uris import checked_store

# Artifacts read back (checkpoints, masks) are small and many: MLflow's download bars
# would only interleave with lth-suite's one-line output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_HASH = re.compile(r"^[0-9a-f]{4,16}$")


@dataclass(frozen=True)
class RunRecord:
    """One stored run, as plain data."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def parent_id(self) -> str | None:
        """The parent run's id; None for an experiment's (parent) run."""
        return self.tags.get(PARENT_TAG)


def _record(run: Any) -> RunRecord:
    return RunRecord(run.info.run_id, run.info.run_name or run.info.run_id,
                     run.info.experiment_id, run.info.status, run.info.start_time or 0,
                     dict(run.data.params), dict(run.data.metrics), dict(run.data.tags))


def _store_path(uri: str) -> Path | None:
    """The local file or folder behind a sqlite or file URI; None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if "://" not in uri:
        return Path(uri)
    return None


class StoreReader:
    """Reads parent runs, child runs, metric histories and artifacts of a store."""

    def __init__(self, uri: str):
        self.uri = uri
        keep_journal(uri)  # before any connection: the writer shares this one's pool
        self.client = MlflowClient(uri)

    def run(self, run_id: str) -> RunRecord | None:
        """A run by id, or None when the store has no such run."""
        if not _RUN_ID.match(run_id):
            return None
        try:
            return _record(self.client.get_run(run_id))
        except MlflowException:
            return None

    def require(self, run_id: str) -> RunRecord:
        """A run by id, or a ``TrackingError`` naming it."""
        found = self.run(run_id)
        if found is None:
            raise TrackingError(f"run {run_id} not found in {self.uri}")
        return found

    def _search(self, filter_string: str, experiment_ids: list[str] | None = None,
                ) -> list[RunRecord]:
        ids = experiment_ids or [e.experiment_id for e in self.client.search_experiments()]
        found, token = [], None
        while True:
            page = self.client.search_runs(ids, filter_string, max_results=1000,
                                           order_by=["attributes.start_time DESC"],
                                           page_token=token)
            found += [_record(run) for run in page]
            token = page.token
            if not token:
                return found

    @staticmethod
    def _latest(parents: list[RunRecord]) -> RunRecord | None:
        finished = [p for p in parents if p.status == "FINISHED"]
        pool = finished or parents
        return max(pool, key=lambda p: p.start_time) if pool else None

    def find_experiment(self, key: str) -> RunRecord:
        """The parent run named by a run id, an MLflow experiment name, a spec hash (or its
        first digits) or a parent run name; the latest finished one when several match."""
        run = self.run(key)
        if run is not None:
            return (self.run(run.parent_id) or run) if run.parent_id else run
        parents_only = f"tags.`{SPEC_HASH_TAG}` LIKE '%'"
        experiment = self.client.get_experiment_by_name(key)
        if experiment is not None:
            found = self._latest(self._search(parents_only, [experiment.experiment_id]))
            if found is None:
                raise TrackingError(f"MLflow experiment '{key}' in {self.uri} holds no "
                                    "lth-suite experiment run")
            return found
        quoted = key.replace("'", "''")
        if _HASH.match(key):
            found = self._latest(self._search(f"tags.`{SPEC_HASH_TAG}` LIKE '{quoted}%'"))
            if found is not None:
                return found
        found = self._latest([r for r in self._search(f"attributes.run_name = '{quoted}'")
                              if r.parent_id is None])
        if found is not None:
            return found
        known = sorted(e.name for e in self.client.search_experiments())
        raise TrackingError(f"'{key}' is not a run id, an MLflow experiment, a spec hash or a "
                            f"run name in {self.uri} (experiments: {', '.join(known) or 'none'})")

    def children(self, parent_id: str) -> list[RunRecord]:
        """The child runs of a parent run, params and latest metrics included."""
        parent = self.run(parent_id)
        ids = [parent.experiment_id] if parent else None
        return self._search(f"tags.`{PARENT_TAG}` = '{parent_id}'", ids)

    def finished_children(self, parent_id: str) -> list[RunRecord]:
        """The children of a parent run that ended FINISHED: the checkpoints of a resume."""
        return [child for child in self.children(parent_id) if child.status == "FINISHED"]

    def unfinished_parents(self, experiment: str) -> list[RunRecord]:
        """Parent runs of an MLflow experiment that did not finish, newest first."""
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = self._search("attributes.status != 'FINISHED'", [found.experiment_id])
        return [run for run in runs if run.parent_id is None]

    def same_spec_parents(self, experiment: str, spec_hash: str) -> list[RunRecord]:
        """Parent runs of an MLflow experiment with this spec hash, newest first."""
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = self._search(f"tags.`{SPEC_HASH_TAG}` = '{spec_hash}'", [found.experiment_id])
        return [run for run in runs if run.parent_id is None]

    def has_metric_at(self, run_id: str, key: str, step: int) -> bool:
        """Whether a run logged ``key`` at ``step`` (a level summary is logged at its level)."""
        return any(m.step == step for m in self.client.get_metric_history(run_id, key))

    def metric_rows(self, run_id: str, keys: Iterable[str]) -> list[dict[str, float]]:
        """Metric histories merged into rows by step (one row per evaluation)."""
        rows: dict[int, dict[str, float]] = {}
        for key in keys:
            for metric in self.client.get_metric_history(run_id, key):
                rows.setdefault(metric.step, {ITERATION: float(metric.step)})[key] = metric.value
        return [rows[step] for step in sorted(rows)]

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one artifact the run is known to have (a checkpoint): one download,
        no listing first; a ``TrackingError`` when it cannot be read."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                return Path(self.client.download_artifacts(run_id, path, tmp)).read_bytes()
        except (MlflowException, OSError):
            raise TrackingError(f"run {run_id} in {self.uri} has no artifact {path}") from None

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """A metric's (step, value) pairs, by step."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))

    def artifact_bytes(self, run_id: str, path: str) -> bytes | None:
        """An artifact's content, or None when the run has no such artifact."""
        folder, _, name = path.rpartition("/")
        try:
            listed = self.client.list_artifacts(run_id, folder or None)
            if name not in {Path(a.path).name for a in listed}:
                return None
            with tempfile.TemporaryDirectory() as tmp:
                local = self.client.download_artifacts(run_id, path, tmp)
                return Path(local).read_bytes()
        except (MlflowException, OSError):
            return None

    def _logged_models(self, run: RunRecord) -> list[Any]:
        try:
            mlflow.set_tracking_uri(self.uri)
            return mlflow.search_logged_models(experiment_ids=[run.experiment_id],
                                               output_format="list")
        except MlflowException:
            return []

    def model_shapes(self, run: RunRecord, run_ids: Iterable[str],
                     ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(input shape, output shape) of one example, from the signature of a model logged
        by one of ``run_ids`` (the first that has one); None when none was logged."""
        wanted = list(run_ids)
        models = [m for m in self._logged_models(run) if m.source_run_id in wanted]
        models.sort(key=lambda m: wanted.index(m.source_run_id))
        for model in models:
            try:
                signature = mlflow.models.get_model_info(model.model_uri).signature
                shape_in = signature.inputs.inputs[0].shape
                shape_out = signature.outputs.inputs[0].shape
            except Exception:  # no signature, not a tensor spec, unreadable model
                continue
            return tuple(int(s) for s in shape_in[1:]), tuple(int(s) for s in shape_out[1:])
        return None

    def logged_model_name(self, run: RunRecord) -> str | None:
        """The name of the MLflow model a run logged, None when it logged none (the model
        itself is never loaded: see ``tracking.stored_weights``)."""
        for model in self._logged_models(run):
            if model.source_run_id == run.run_id:
                return str(model.name)
        return None


def open_reader(uri: str) -> StoreReader:
    """A reader, or a ``TrackingError`` when the store does not exist or cannot be read."""
    path = _store_path(uri)
    if path is not None and not path.exists():
        raise TrackingError(f"tracking URI {uri}: no MLflow store at {path} "
                            "(pass --tracking-uri, or run from the folder of the experiment)")
    return checked_store(uri, StoreReader, "read")
