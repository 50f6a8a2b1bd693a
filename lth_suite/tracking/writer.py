"""Writing an experiment to MLflow: parent run, child runs, metrics, artifacts, models.

Parent run = experiment; nested child run = (replicate, level, branch).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from .. import __version__
from ..pruning.masks import Mask
from ..signals import interrupts_held
from . import lease
from .batches import batches
from .experiments import adoptable, experiment_id
from .git_state import git_state
from .journal import keep_journal
from .model_logging import quiet_model_logging
from .names import (
    ERROR_TAG,
    MASK_ARTIFACT,
    PARENT_TAG,
    RESUMED_TAG,
    RUN_NAME_TAG,
    SPEC_ARTIFACT,
    SPEC_PARAM_PREFIX,
    VERSION_TAG,
)
from .params import flatten
from .reader import StoreReader
from .uris import checked_store, safe_name

LIVE_EVERY = 10.0  # seconds between writes of a running child's evaluations


class Tracker:
    """Logs one experiment to MLflow and guarantees no run of it is left RUNNING.

    It writes only; what it needs to read (the children of a run it resumes) it asks
    ``reader``, the one reader of the store.
    """

    def __init__(self, uri: str):
        self.uri = uri
        mlflow.set_tracking_uri(uri)  # the model logging API reads the global URI
        keep_journal(uri)  # before the first write: a deleted journal per write costs most
        self.client = MlflowClient(uri)
        self.reader = StoreReader(uri)
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self._open: list[str] = []
        self._adopted_parent = False
        self._lease: lease.Lease | None = None  # this process runs the parent run
        # Child runs' metrics wait here and go to the store in one call when the run ends
        # (see ``start_child``); its identifying params wait only for its first other ones.
        self._pending: dict[str, tuple[list[Param], list[Metric]]] = {}
        self._sent: dict[str, float] = {}  # when each child's waiting metrics were last sent
        # Where each open child's artifacts go, known from its creation: the client would
        # otherwise read the run back from the store to find out, once per child.
        self._artifact_uris: dict[str, str] = {}

    def start_experiment(self, experiment: str, run_name: str, params: Mapping[str, Any],
                         tags: Mapping[str, str], spec_yaml: str) -> str:
        """Create (or adopt, under ``mlflow run``) the parent run and describe it."""
        all_tags = {**git_state(), VERSION_TAG: __version__, **tags}
        launched = os.environ.get("MLFLOW_RUN_ID")
        adopted = adoptable(self.client, launched)
        if not adopted:
            self.experiment_id = experiment_id(self.client, self.uri, experiment)
        # A parent exists whole or not at all: stopped halfway, it could not be resumed.
        with interrupts_held():
            if adopted:
                self.parent_id, self._adopted_parent = adopted, True
                self.experiment_id = self.client.get_run(adopted).info.experiment_id
                self.client.set_tag(adopted, RUN_NAME_TAG, run_name)
            else:
                self.parent_id = self.client.create_run(self.experiment_id,
                                                        run_name=run_name).info.run_id
            self._open.append(self.parent_id)
            self._lease = lease.claim(self.client, self.parent_id)
            # Prefixed so they never clash with the parameters ``mlflow run`` logged itself.
            self._log(self.parent_id, params=flatten(params, SPEC_PARAM_PREFIX), tags=all_tags)
            self.client.log_text(self.parent_id, spec_yaml, SPEC_ARTIFACT)
        return self.parent_id

    def attach(self, parent_id: str) -> None:
        """Log children under an existing parent run, leaving its status alone (a unit
        running in another process)."""
        self.parent_id = parent_id
        self.experiment_id = self.reader.require(parent_id).experiment_id

    def end_running_children(self, parent_id: str, reason: str) -> None:
        """End as KILLED the children of ``parent_id`` still RUNNING (their process is gone)."""
        for child in self.reader.children(parent_id):
            if child.status == "RUNNING":
                self.client.set_tag(child.run_id, ERROR_TAG, reason[:5000])
                self.client.set_terminated(child.run_id, status="KILLED")

    def resume_experiment(self, parent_id: str, mark: bool = True) -> None:
        """Reopen an unfinished parent run; end children a dead process left RUNNING as KILLED."""
        # Before any change; refused if another process finished it while this one loaded.
        self._lease = lease.acquire(self.client, self.uri, parent_id, unfinished=True)
        self.parent_id, parent = parent_id, self.reader.require(parent_id)
        self.experiment_id = parent.experiment_id
        if ERROR_TAG in parent.tags:  # why it stopped last time is no longer true
            self.client.delete_tag(parent_id, ERROR_TAG)
        self.end_running_children(
            parent_id, "the process running it died; ended when the experiment resumed")
        with interrupts_held():
            self.client.update_run(parent_id, status="RUNNING")
            self._open.append(parent_id)
        if mark:
            self.client.set_tag(parent_id, RESUMED_TAG, str(int(time.time())))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """One tag, written at once."""
        self.client.set_tag(run_id, key, value)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Params of a run, as strings, written at once: a child's together with the
        params it was started with, in one write."""
        waiting = self._pending[run_id][0] if run_id in self._pending else []
        self._send(run_id, [*waiting, *(Param(k, str(v)) for k, v in params.items())], [], [])
        waiting.clear()

    def start_child(self, name: str, params: Mapping[str, Any]) -> str:
        """A nested run under the parent, with its params.

        These params (which replicate, level and branch) go out with the child's first
        ``log_params`` (its densities, logged before it trains), so a run that a crash leaves
        RUNNING still says what it was, at one write for both; its metrics are written in
        one call when it ends, FINISHED or not, as are these params if nothing sent them.
        """
        assert self.parent_id is not None and self.experiment_id is not None, "start_experiment first"
        self._lease = lease.renew_if_due(self.client, self.parent_id, self._lease)
        with interrupts_held():
            run = self.client.create_run(self.experiment_id, run_name=name,
                                         tags={PARENT_TAG: self.parent_id})
            self._open.append(run.info.run_id)
        self._pending[run.info.run_id] = ([Param(k, str(v)) for k, v in params.items()], [])
        self._sent[run.info.run_id] = time.monotonic()
        if not self.uri.startswith("databricks"):  # there the client adds profile details
            self._artifact_uris[run.info.run_id] = run.info.artifact_uri
        return run.info.run_id

    def log_evaluations(self, run_id: str, history: list[dict[str, float]]) -> None:
        """Evaluation rows of a child run still training: they wait as ``log_history``'s do,
        and go out with whatever else waits once ``LIVE_EVERY`` seconds have passed, so a
        long training shows its curves while it runs and a short one costs no extra write."""
        self.log_history(run_id, history)
        now = time.monotonic()
        if run_id in self._pending and now - self._sent.get(run_id, now) >= LIVE_EVERY:
            params, metrics = self._pending[run_id]
            self._pending[run_id] = ([], [])
            self._sent[run_id] = now
            self._send(run_id, params, metrics, [])

    def log_history(self, run_id: str, history: list[dict[str, float]]) -> None:
        """Evaluation rows as metrics at ``step=iteration`` (a child run's when it ends)."""
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(row["iteration"]))
                   for row in history for key, value in row.items() if key != "iteration"]
        self._log_or_defer(run_id, [], metrics)

    def log_metrics(self, run_id: str, values: Mapping[str, float], step: int = 0) -> None:
        """Several metrics at one step (a child run's when it ends)."""
        now = int(time.time() * 1000)
        self._log_or_defer(run_id, [], [Metric(k, float(v), now, step) for k, v in values.items()])

    def _log_or_defer(self, run_id: str, params: list[Param], metrics: list[Metric]) -> None:
        if run_id in self._pending:
            self._pending[run_id][0].extend(params)
            self._pending[run_id][1].extend(metrics)
        else:
            self._send(run_id, params, metrics, [])

    def _flush(self, run_id: str, tags: Mapping[str, str] | None = None) -> None:
        """Write what a child run has waiting (and ``tags``), in as few calls as MLflow allows."""
        params, metrics = self._pending.pop(run_id, ([], []))
        self._sent.pop(run_id, None)
        self._send(run_id, params, metrics, [RunTag(k, str(v)) for k, v in (tags or {}).items()])

    def log_json(self, run_id: str, data: Any, path: str) -> None:
        """A JSON artifact, e.g. an analyzer's table; path parts are sanitised."""
        self.client.log_dict(run_id, data, "/".join(safe_name(part) for part in path.split("/")))

    def log_training_artifacts(self, run_id: str, mask: Mask,
                               states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """The bit-packed mask and state dicts by file name (``state_dict.pt``, ...)."""
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, MASK_ARTIFACT).write_bytes(mask.pack())
            for name, state in states.items():
                torch.save(dict(state), Path(folder, name))
            uri = self._artifact_uris.get(run_id)
            if uri is None:
                self.client.log_artifacts(run_id, folder)
            else:
                get_artifact_repository(uri, tracking_uri=self.uri).log_artifacts(folder)

    def log_model(self, run_id: str, model: torch.nn.Module, name: str,
                  example: torch.Tensor, model_format: str = "pickle") -> str:
        """The trained network as an MLflow model that ``mlflow.pytorch.load_model`` reads.

        ``pickle`` saves the module with ``torch.save``; ``pt2`` traces it with
        ``torch.export`` (seconds for the first model of a process, a tenth of a second
        for each later one) so that it loads without the code that defined it.

        A model whose ``transformers_components()`` returns its Hugging Face parts (a
        model, a tokenizer, a pipeline task) is logged in MLflow's transformers flavour
        instead, which ``mlflow.transformers.load_model`` reads.
        """
        components = getattr(model, "transformers_components", None)
        parts = components() if callable(components) else None
        if parts is not None:
            return self._log_transformers(run_id, dict(parts), name)
        cpu_model = copy.deepcopy(model).cpu().eval()
        # Created here so the model lands in this experiment, not the fluent default one.
        logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id,
                                                experiment_id=self.experiment_id)
        with quiet_model_logging():
            info = mlflow.pytorch.log_model(
                cpu_model, name=name, run_id=run_id, model_id=logged.model_id,
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                input_example=example.detach().cpu().numpy(), serialization_format=model_format,
            )
        return info.model_uri

    def _log_transformers(self, run_id: str, parts: dict, name: str) -> str:
        """Hugging Face parts saved in MLflow's transformers flavour, logged under ``name``
        as an artifact folder of the run; its ``runs:/`` URI."""
        import mlflow.transformers

        task = parts.pop("task", None)
        with tempfile.TemporaryDirectory() as folder, quiet_model_logging():
            path = Path(folder, name)
            mlflow.transformers.save_model(transformers_model=parts, path=str(path), task=task)
            self.client.log_artifacts(run_id, str(path), name)
        return f"runs:/{run_id}/{name}"

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str) -> None:
        """Local files as artifacts of a run (a finished run too) under one folder."""
        for path in files:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
        """End one run with FINISHED, FAILED or KILLED; ``reason`` says why it did not finish."""
        if run_id not in self._open:
            return  # already ended, e.g. a child ended FAILED before the parent gives up
        try:
            self._flush(run_id, {ERROR_TAG: reason[:5000]} if reason else None)
        except Exception:
            if status == "FINISHED":
                raise  # the run stays open: the caller's end_all ends it FAILED
            # ending FAILED or KILLED anyway: the status matters more than what was pending
        self._open.remove(run_id)
        self._artifact_uris.pop(run_id, None)
        if run_id == self.parent_id and self._lease is not None:
            lease.release(self.client, run_id, self._lease)
        if run_id == self.parent_id and self._adopted_parent and status == "FINISHED":
            return  # ``mlflow run`` ends the run it created
        self.client.set_terminated(run_id, status=status)

    def end_all(self, status: str, reason: str | None = None) -> list[str]:
        """End every run still open, children first (FAILED or KILLED); the runs the store
        would not let end (a full disk), which stay RUNNING there."""
        stuck = []
        for run_id in reversed(list(self._open)):
            try:
                with interrupts_held():  # a second Ctrl-C must not stop the ending halfway
                    self.end_run(run_id, status, reason)
            except Exception:
                stuck.append(run_id)
        return stuck

    def _log(self, run_id: str, metrics: list[Metric] | None = None,
             params: Mapping[str, str] | None = None,
             tags: Mapping[str, str] | None = None) -> None:
        self._send(run_id, [Param(k, v) for k, v in (params or {}).items()], list(metrics or []),
                   [RunTag(k, str(v)) for k, v in (tags or {}).items()])

    def _send(self, run_id: str, params: list[Param], metrics: list[Metric],
              tags: list[RunTag]) -> None:
        """Params, metrics and tags in as few ``log_batch`` calls as MLflow's limits allow.

        A key given twice starts a new call, so MLflow judges it as it would two calls.
        """
        for batch_params, batch_metrics, batch_tags in batches(params, metrics, tags):
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params,
                                  tags=batch_tags)


def open_tracker(uri: str) -> Tracker:
    """A tracker, or a ``TrackingError`` naming the URI when the store is unusable."""
    return checked_store(uri, Tracker, "used")
