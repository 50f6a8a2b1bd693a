"""MLflow tracking: the only module that imports mlflow.

Parent run = experiment; nested child run = (replicate, level, branch).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from . import __version__
from .errors import TrackingError
from .masks import Mask

PARAM_BATCH, METRIC_BATCH = 100, 1000
TAG_PREFIX = "lth_suite."


def default_tracking_uri() -> str:
    """The embedded store: ``mlflow.db`` in the working directory."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None) -> str:
    """``--tracking-uri``, else the spec, else ``MLFLOW_TRACKING_URI``, else the default.

    Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the launcher's store always wins,
    because the run it created lives there.
    """
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if os.environ.get("MLFLOW_RUN_ID") and env_uri:
        return env_uri
    return cli_uri or spec_uri or env_uri or default_tracking_uri()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys to string values; lists stay JSON, as MLflow params are strings."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value if isinstance(value, str) else json.dumps(value)
    return flat


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


def _git_state() -> dict[str, str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, f"{TAG_PREFIX}git_commit": commit,
            f"{TAG_PREFIX}git_dirty": str(bool(dirty)).lower()}


class Tracker:
    """Logs one experiment to MLflow and guarantees no run of it is left RUNNING."""

    def __init__(self, uri: str):
        self.uri = uri
        mlflow.set_tracking_uri(uri)  # the model logging API reads the global URI
        self.client = MlflowClient(uri)
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self._open: list[str] = []
        self._adopted_parent = False

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if self.uri.startswith("sqlite:"):
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"
            location = (Path.cwd().resolve() / "mlruns" / slug).as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def start_experiment(self, experiment: str, run_name: str, params: Mapping[str, Any],
                         tags: Mapping[str, str], spec_yaml: str) -> str:
        """Create (or adopt, under ``mlflow run``) the parent run and describe it."""
        all_tags = {**_git_state(), f"{TAG_PREFIX}version": __version__, **tags}
        adopted = os.environ.get("MLFLOW_RUN_ID")
        if adopted:
            self.parent_id, self._adopted_parent = adopted, True
            self.experiment_id = self.client.get_run(adopted).info.experiment_id
            self.client.set_tag(adopted, "mlflow.runName", run_name)
        else:
            self.experiment_id = self._experiment_id(experiment)
            run = self.client.create_run(self.experiment_id, run_name=run_name)
            self.parent_id = run.info.run_id
        self._open.append(self.parent_id)
        # Prefixed so they never clash with the parameters ``mlflow run`` logged itself.
        self._log(self.parent_id, params=flatten(params, "spec."), tags=all_tags)
        self.client.log_text(self.parent_id, spec_yaml, "spec.yaml")
        return self.parent_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Params of a run, as strings, in batches."""
        self._log(run_id, params={k: str(v) for k, v in params.items()})

    def start_child(self, name: str, params: Mapping[str, Any]) -> str:
        """A nested run under the parent, with its params."""
        assert self.parent_id is not None and self.experiment_id is not None, "start_experiment first"
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent_id})
        self._open.append(run.info.run_id)
        self._log(run.info.run_id, params={k: str(v) for k, v in params.items()})
        return run.info.run_id

    def log_history(self, run_id: str, history: list[dict[str, float]]) -> None:
        """Evaluation rows as metrics at ``step=iteration``, in batches."""
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(row["iteration"]))
                   for row in history for key, value in row.items() if key != "iteration"]
        self._log(run_id, metrics=metrics)

    def log_metrics(self, run_id: str, values: Mapping[str, float], step: int = 0) -> None:
        """Several metrics at one step, in one batch."""
        now = int(time.time() * 1000)
        self._log(run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def log_json(self, run_id: str, data: Any, path: str) -> None:
        """A JSON artifact, e.g. an analyzer's table."""
        self.client.log_dict(run_id, data, path)

    def log_training_artifacts(self, run_id: str, mask: Mask,
                               state: Mapping[str, torch.Tensor] | None) -> None:
        """The bit-packed mask and, when given, the trained state dict."""
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "mask.npz").write_bytes(mask.pack())
            if state is not None:
                torch.save(dict(state), Path(folder, "state_dict.pt"))
            self.client.log_artifacts(run_id, folder)

    def log_model(self, run_id: str, model: torch.nn.Module, name: str,
                  example: torch.Tensor) -> str:
        """The trained network as an MLflow model that ``mlflow.pytorch.load_model`` reads."""
        cpu_model = copy.deepcopy(model).cpu().eval()
        # Created here so the model lands in this experiment, not the fluent default one.
        logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id,
                                                experiment_id=self.experiment_id)
        info = mlflow.pytorch.log_model(
            cpu_model, name=name, run_id=run_id, model_id=logged.model_id,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            input_example=example.detach().cpu().numpy(),
        )
        return info.model_uri

    def end_run(self, run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
        """End one run with FINISHED, FAILED or KILLED; ``reason`` says why it did not finish."""
        if run_id not in self._open:
            return  # already ended, e.g. a child ended FAILED before the parent gives up
        self._open.remove(run_id)
        if reason:
            self.client.set_tag(run_id, f"{TAG_PREFIX}error", reason[:5000])
        if run_id == self.parent_id and self._adopted_parent and status == "FINISHED":
            return  # ``mlflow run`` ends the run it created
        self.client.set_terminated(run_id, status=status)

    def end_all(self, status: str, reason: str | None = None) -> None:
        """End every run still open, children first (FAILED or KILLED)."""
        for run_id in reversed(list(self._open)):
            self.end_run(run_id, status, reason)

    def _log(self, run_id: str, metrics: list[Metric] | None = None,
             params: Mapping[str, str] | None = None,
             tags: Mapping[str, str] | None = None) -> None:
        for batch in _chunks([Param(k, v) for k, v in (params or {}).items()], PARAM_BATCH):
            self.client.log_batch(run_id, params=batch)
        for batch in _chunks(list(metrics or []), METRIC_BATCH):
            self.client.log_batch(run_id, metrics=batch)
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def open_tracker(uri: str) -> Tracker:
    """A tracker, or a ``TrackingError`` naming the URI when the store is unusable."""
    try:
        tracker = Tracker(uri)
        tracker.client.search_experiments(max_results=1)
    except Exception as exc:  # mlflow raises many types for a bad store
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrackingError(f"tracking URI {uri}: cannot be used ({first})") from None
    return tracker


def ui_command(uri: str, port: int) -> list[str]:
    """The command that serves the MLflow UI for ``uri`` on 127.0.0.1."""
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", "127.0.0.1", "--port", str(port)]
