"""Which MLflow experiment an lth-suite experiment lands in, and of which kind.

The MLflow 3 UI opens an experiment without a kind in its GenAI mode (traces, evaluations);
experiments made here are tagged as model training so the UI opens on their runs.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from .names import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from .uris import safe_name

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default" experiment


def experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    """The id of the experiment ``name``, created if new; either way tagged of the UI's
    model-training kind (an existing experiment keeps a kind it already has)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                      EXPERIMENT_KIND)
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:"):
        location = (Path.cwd().resolve() / "mlruns" / safe_name(name)).as_uri()
    return client.create_experiment(name, artifact_location=location,
                                     tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def adoptable(client: MlflowClient, run_id: str | None, experiment: str) -> str | None:
    """The ``mlflow run`` run to continue as the parent run, or None: none was started, or
    it sits in MLflow's Default experiment (``mlflow run`` without ``--experiment-name``),
    where ``report`` and ``resume`` would not look; the parent then goes to ``experiment``."""
    if not run_id:
        return None
    run = client.get_run(run_id)
    if (run.info.experiment_id == DEFAULT_EXPERIMENT_ID
            and client.get_experiment(DEFAULT_EXPERIMENT_ID).name != experiment):
        return None
    return run_id
