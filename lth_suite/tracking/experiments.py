"""Which MLflow experiment an lth-suite experiment lands in, and of which kind.

The MLflow 3 UI opens an experiment without a kind in its GenAI mode (traces, evaluations);
experiments made here are tagged as model training so the UI opens on their runs.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from .names import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, NOTE_TAG, SPEC_HASH_TAG
from .uris import safe_name


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


def adoptable(client: MlflowClient, run_id: str | None) -> str | None:
    """The ``mlflow run`` run to continue as the parent run, or None when none was started.

    It is the parent wherever ``mlflow run`` put it: in the experiment named by
    ``--experiment-name``, else in MLflow's Default experiment (the ``mlproject`` command
    then says how to name one). Its source, entry point, git commit and parameters are
    MLflow's record of how the experiment was launched: a second parent would leave it
    empty."""
    if not run_id:
        return None
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    experiment_id(client, "", experiment.name)  # tag its kind for the UI's model-training view
    return run_id


def explain_launched_run(uri: str, run_id: str, error: str) -> None:
    """Describe on the ``mlflow run`` run why the experiment stopped before it started (a
    spec or data error), so that the run ``mlflow run`` then ends FAILED is not left empty.

    Deleting it instead would not help: ``mlflow run`` ends its run after the entry point
    exits (its check of whether the run already ended compares a status name with status
    numbers, so it always does) and fails with a traceback on a deleted run."""
    client = MlflowClient(uri)
    if client.get_run(run_id).data.tags.get(SPEC_HASH_TAG) is None:  # not lth-suite's parent
        client.set_tag(run_id, NOTE_TAG, f"lth-suite stopped before the experiment started: "
                                         f"{error}")
