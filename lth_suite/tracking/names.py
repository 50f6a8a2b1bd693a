"""The vocabulary of the store, defined once: branches, run names, tags, artifacts, metrics.

Every module that writes or reads these names imports them from here, so a renamed tag
or artifact cannot drift between the writer, the reader, resume, reports and export.
Nothing here imports mlflow or torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# --------------------------------------------------------------------------------------
# Branches: the main line and the controls trained beside it at every pruned level
# --------------------------------------------------------------------------------------
TICKET = "ticket"  # the main line: the pruned mask with rewound weights
# Every other branch is a control, named by the plugin that registered it (its spec name).


def branch_order(branch: str, controls: Sequence[str] = ()) -> tuple[int, str]:
    """Sort key: the ticket first, then ``controls`` in their order, any other branch
    after them by name."""
    order = [TICKET, *controls]
    return (order.index(branch), "") if branch in order else (len(order), branch)


# --------------------------------------------------------------------------------------
# Run names
# --------------------------------------------------------------------------------------
def child_run_name(replicate: int, level: int, branch: str) -> str:
    """The child run of one training: ``r0-level3-ticket``."""
    return f"r{replicate}-level{level}-{branch}"


def parent_run_name(experiment: str, spec_hash: str) -> str:
    """The parent run of an experiment: its name and the first digits of its spec hash."""
    return f"{experiment}-{spec_hash[:8]}"


def model_name(replicate: int, level: int) -> str:
    """The logged MLflow model of a ticket."""
    return f"{TICKET}-r{replicate}-level{level}"


# --------------------------------------------------------------------------------------
# Tags (MLflow's own, and lth-suite's under one prefix)
# --------------------------------------------------------------------------------------
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
TAG_PREFIX = "lth_suite."
SPEC_HASH_TAG = f"{TAG_PREFIX}spec_hash"
PLUGINS_TAG = f"{TAG_PREFIX}plugins"
CONTROLS_TAG = f"{TAG_PREFIX}controls"  # JSON: [[name, description, what it varies], ...]
SYNTHETIC_TAG = f"{TAG_PREFIX}dataset_synthetic"
VERSION_TAG = f"{TAG_PREFIX}version"
OWN_GIT_COMMIT_TAG = f"{TAG_PREFIX}git_commit"
GIT_DIRTY_TAG = f"{TAG_PREFIX}git_dirty"
ERROR_TAG = f"{TAG_PREFIX}error"  # why a run did not finish
RESUMED_TAG = f"{TAG_PREFIX}resumed"  # when the experiment was last resumed (epoch seconds)
LEASE_TAG = f"{TAG_PREFIX}lease"  # which process runs the experiment now (tracking.lease)
HOOKS_DONE_TAG = f"{TAG_PREFIX}hooks_done_through"  # last level whose lifecycle hooks ran
SWEEP_ID_TAG = f"{TAG_PREFIX}sweep_id"
SWEEP_POINT_TAG = f"{TAG_PREFIX}sweep_point"
SWEEP_INDEX_TAG = f"{TAG_PREFIX}sweep_index"
# The MLflow UI opens an experiment of this kind on its runs, not on GenAI traces.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # a run's description in the UI: the report's summary
NOTE_LIMIT = 8000  # characters MLflow keeps in a tag value

# Params of a child run: which training it is
REPLICATE_PARAM, LEVEL_PARAM, BRANCH_PARAM = "replicate", "level", "branch"
DENSITY_PARAM = "density"  # and "density.<tensor>" per prunable tensor
SPEC_PARAM_PREFIX = "spec."  # the flattened spec on the parent run

# --------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------
SPEC_ARTIFACT = "spec.yaml"  # the parent run's spec, the single source of truth
MASK_ARTIFACT = "mask.npz"  # a child's bit-packed mask
STATE_ARTIFACT = "state_dict.pt"  # a child's trained weights
REWIND_STATE_ARTIFACT = "rewind_state.pt"  # the dense run's weights at the rewind point


def captured_state_artifact(iteration: int) -> str:
    """The dense run's weights at an iteration a control asked for."""
    return f"captured_state_{iteration}.pt"


# A searched rewind (``auto``): per replicate, on the parent run, the chosen iteration as a
# tag (what resume reads back), the instability curve as a JSON artifact and as metrics
# (``rewind_search/r0/barrier`` at step=candidate iteration).
REWIND_SEARCH = "rewind_search"


def rewind_search_tag(replicate: int) -> str:
    """The tag holding replicate ``replicate``'s chosen rewind iteration."""
    return f"{TAG_PREFIX}{REWIND_SEARCH}.r{replicate}"


def rewind_search_artifact(replicate: int) -> str:
    """The JSON artifact of replicate ``replicate``'s instability curve and choice."""
    return f"{REWIND_SEARCH}/r{replicate}.json"


def rewind_search_metric(replicate: int, key: str) -> str:
    """``rewind_search/r0/barrier``: a point of the curve, at step=candidate iteration."""
    return f"{REWIND_SEARCH}/r{replicate}/{key}"


ANALYSIS_FOLDER = "analysis"  # analysis/<analyzer>/level_NN.json and experiment.json
REPORT_FOLDER = "report"


def analysis_artifact(analyzer: str, label: str) -> str:
    """Where an analyzer's table goes on the parent run."""
    return f"{ANALYSIS_FOLDER}/{analyzer}/{label}.json"


def level_label(level: int) -> str:
    """``level_03``: a level in artifact names."""
    return f"level_{level:02d}"


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------
ITERATION = "iteration"  # the step of every history row
HISTORY_KEYS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
TASK_HISTORY_KEYS = ("val_perplexity", "test_perplexity")  # language-model tasks' columns
EARLY_STOP_ITERATION = "early_stop_iteration"
EARLY_STOP_VAL_LOSS = "early_stop_val_loss"
EARLY_STOP_ACCURACY = "early_stop_test_accuracy"
FINAL_ACCURACY = "final_test_accuracy"
FINAL_LOSS = "final_test_loss"
DENSITY = "density"
LEVEL = "level"  # on the parent run, at step=level: marks a level's summary as logged
WALL_TIME = "wall_time_s"
# What a level summary aggregates per branch (mean, and min/max over replicates)
SUMMARY_KEYS = (EARLY_STOP_ACCURACY, FINAL_ACCURACY, EARLY_STOP_ITERATION)
# Language-model tasks add perplexities at the early stop (aggregated when every result has them)
EARLY_STOP_VAL_PERPLEXITY = "early_stop_val_perplexity"
EARLY_STOP_PERPLEXITY = "early_stop_test_perplexity"
TASK_SUMMARY_KEYS = (EARLY_STOP_VAL_PERPLEXITY, EARLY_STOP_PERPLEXITY)


def branch_metric(branch: str, key: str) -> str:
    """A level summary's metric of one branch: ``ticket/early_stop_test_accuracy``."""
    return f"{branch}/{key}"


# Statistics across replicates, logged on the parent run by the report at step = level
INTERVAL_PARTS = ("sd", "ci_low", "ci_high")
COMPARISON_PARTS = ("mean_difference", "statistic", "p_value", "effect_size")


def interval_metric(branch: str, key: str, part: str) -> str:
    """A branch's spread at one level: ``ticket/early_stop_test_accuracy_ci_low``."""
    return f"{branch}/{key}_{part}"


def comparison_metric(control: str, part: str) -> str:
    """The paired comparison of the ticket with a control: ``ticket_vs_reinit/p_value``."""
    return f"{TICKET}_vs_{control}/{part}"


# What MLflow accepts in a param name; anything else (the ``*`` of a glob pattern in
# ``pruning.fraction``) is written as ``:x2a:``, its code point, and the name stays unique.
PARAM_CHARACTER = re.compile(r"[^\w\-. :/]")


def param_key(key: str) -> str:
    """A spec key as an MLflow param name may spell it."""
    return PARAM_CHARACTER.sub(lambda found: f":x{ord(found.group()):02x}:", str(key))
