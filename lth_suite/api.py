"""The public API of lth-suite for plugin authors: everything a plugin imports, in one module.

A plugin's hook module (the entry point) holds the hooks and the params models; the torch
code lives in another module, registered with ``lazy`` and imported when a spec uses it::

    # my_plugin/__init__.py
    from pydantic import BaseModel, ConfigDict, Field

    from lth_suite.api import RegisterFn, hookimpl, lazy


    class PowerParams(BaseModel):
        model_config = ConfigDict(extra="forbid")  # a typo in a spec is a spec error
        power: float = Field(default=1.0, gt=0, description="scores are |w| ** power")


    @hookimpl
    def lth_register_criteria(register: RegisterFn) -> None:
        \"\"\"Register ``power_magnitude``.\"\"\"
        register("power_magnitude", lazy("my_plugin.criteria:power_magnitude"), PowerParams,
                 "keeps the largest |w| ** power")

    # my_plugin/criteria.py
    from lth_suite.api import Criterion, Mask, PruneRequest, keep_top

    from . import PowerParams


    def power_magnitude(params: PowerParams) -> Criterion:
        \"\"\"The criterion: keep the largest ``|w| ** power`` of each group.\"\"\"
        def criterion(request: PruneRequest) -> Mask:
            weights = dict(request.model.named_parameters())
            scores = {n: weights[n].detach().abs() ** params.power for n in request.mask}
            return keep_top(scores, request.mask, request.groups)
        return criterion

Importing this module imports neither torch nor mlflow, so a hook module that imports
from it keeps ``lth-suite validate`` fast: the names a hook module needs are imported
now, and each name whose module needs torch is imported on first access (PEP 562).
docs/plugins.md describes every hook and every field of every type listed here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    DataError,
    DataMissing,
    Diverged,
    LthError,
    PluginFailure,
    SpecError,
    UnknownComponentError,
)
from .plugins.hookspecs import hookimpl
from .plugins.params import DatasetParams, ModelDataConfig
from .plugins.registry import LazyFactory, NoParams, RegisterFn, lazy

if TYPE_CHECKING:
    from .analysis.formats import Format, FormatRequest, Representation
    from .analysis.inference import Measurement, MeasureSettings, build_formats, measure_formats
    from .analysis.similarity import chance_iou, chance_iou_pooled, iou
    from .lottery.analyzers import Analysis, Analyzer
    from .lottery.controls import Control, ControlContext, ControlStart
    from .lottery.events import BranchResult, ExperimentFinished, LevelFinished
    from .lottery.experiment import Experiment
    from .lottery.rewinding import Rewind, RewindContext, RewindPoint, State
    from .parallel.data_parallel import check_data_parallel
    from .parallel.ranks import follow_unit, free_port, lead
    from .parallel.torchrun import launched
    from .parallel.unit_worker import UnitDone, UnitJob
    from .parallel.units import Execute, Job, Launcher, Outcome, Unit, UnitFailed, UnitGraph, run_in_order
    from .parallel.worker_pool import WorkerPool
    from .pruning.allocation import Allocation, LayerShape, erk_counts, uniform_counts
    from .pruning.masks import Layer, Mask, keep_top, prunable_layers, top_positions
    from .pruning.prunable import PrunableModule
    from .pruning.targets import Criterion, Group, PruneRequest
    from .seeding import derive_seed
    from .spec.controls import BRANCHES, CONTROLS, RANDOM_PRUNE, REINIT
    from .spec.sections import Duration, ExperimentSpec
    from .tracking.names import TICKET
    from .training.acceleration import Acceleration
    from .training.config import TrainConfig
    from .training.connectivity import barriers, copy_config, interpolate, linear_path, train_copies
    from .training.data import Augment, DataInfo, RandomCropFlip, RawData, Splits
    from .training.distributed import Rendezvous
    from .training.dynamic import DynamicSparsity, MaskUpdater, UpdaterContext
    from .training.loop import Step, StepCallback
    from .training.optimizers import FusedOptimizer
    from .training.recipes import Decay, Optimizer, OptimizerBuilder
    from .training.result import TrainResult, snapshot
    from .training.single import evaluate, train
    from .training.streaming import StreamedData, StreamedSet, StreamedSplits
    from .training.tasks import CLASSIFICATION, IGNORE_INDEX, Task
    from .training.threads import usable_cores

# Name -> the module that defines it, imported on first access. Keep in step with the
# TYPE_CHECKING imports above (tests/contract/test_api.py checks both against ``__all__``).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Criterion", "Group", "PruneRequest"), "lth_suite.pruning.targets"),
    **dict.fromkeys(("Layer", "Mask", "keep_top", "prunable_layers"), "lth_suite.pruning.masks"),
    **dict.fromkeys(("Allocation", "LayerShape"), "lth_suite.pruning.allocation"),
    **dict.fromkeys(("DynamicSparsity", "MaskUpdater", "UpdaterContext"),
                    "lth_suite.training.dynamic"),
    **dict.fromkeys(("Augment", "DataInfo", "RawData", "Splits"), "lth_suite.training.data"),
    "TrainConfig": "lth_suite.training.config",
    "PrunableModule": "lth_suite.pruning.prunable",
    "FusedOptimizer": "lth_suite.training.optimizers",
    **dict.fromkeys(("Task", "CLASSIFICATION", "IGNORE_INDEX"), "lth_suite.training.tasks"),
    **dict.fromkeys(("Decay", "Optimizer", "OptimizerBuilder"), "lth_suite.training.recipes"),
    "TrainResult": "lth_suite.training.result",
    **dict.fromkeys(("Step", "StepCallback"), "lth_suite.training.loop"),
    **dict.fromkeys(("StreamedData", "StreamedSet", "StreamedSplits"),
                    "lth_suite.training.streaming"),
    **dict.fromkeys(("Rewind", "RewindContext", "RewindPoint", "State"),
                    "lth_suite.lottery.rewinding"),
    **dict.fromkeys(("Analysis", "Analyzer"), "lth_suite.lottery.analyzers"),
    **dict.fromkeys(("Control", "ControlContext", "ControlStart"), "lth_suite.lottery.controls"),
    **dict.fromkeys(("BranchResult", "ExperimentFinished", "LevelFinished"),
                    "lth_suite.lottery.events"),
    # Launch units import no torch, but only a launcher needs them: not worth loading
    # for every hook module.
    **dict.fromkeys(("Execute", "Job", "Launcher", "Outcome", "Unit", "UnitFailed", "UnitGraph",
                     "run_in_order"), "lth_suite.parallel.units"),
    # What the built-in plugins use, so that they import this module only.
    "TICKET": "lth_suite.tracking.names",
    **dict.fromkeys(("Duration", "ExperimentSpec"), "lth_suite.spec.sections"),
    # The default controls' branch names, for analyzers and hooks that look for them.
    **dict.fromkeys(("REINIT", "RANDOM_PRUNE", "CONTROLS", "BRANCHES"), "lth_suite.spec.controls"),
    "Experiment": "lth_suite.lottery.experiment",
    "Acceleration": "lth_suite.training.acceleration",
    "derive_seed": "lth_suite.seeding",
    "top_positions": "lth_suite.pruning.masks",
    **dict.fromkeys(("uniform_counts", "erk_counts"), "lth_suite.pruning.allocation"),
    "RandomCropFlip": "lth_suite.training.data",
    **dict.fromkeys(("train", "evaluate"), "lth_suite.training.single"),
    "snapshot": "lth_suite.training.result",
    **dict.fromkeys(("interpolate", "barriers", "linear_path", "copy_config", "train_copies"),
                    "lth_suite.training.connectivity"),
    "usable_cores": "lth_suite.training.threads",
    "Rendezvous": "lth_suite.training.distributed",
    **dict.fromkeys(("chance_iou", "chance_iou_pooled", "iou"), "lth_suite.analysis.similarity"),
    "launched": "lth_suite.parallel.torchrun",
    "check_data_parallel": "lth_suite.parallel.data_parallel",
    **dict.fromkeys(("follow_unit", "free_port", "lead"), "lth_suite.parallel.ranks"),
    **dict.fromkeys(("UnitDone", "UnitJob"), "lth_suite.parallel.unit_worker"),
    "WorkerPool": "lth_suite.parallel.worker_pool",
    **dict.fromkeys(("Format", "FormatRequest", "Representation"), "lth_suite.analysis.formats"),
    **dict.fromkeys(("MeasureSettings", "Measurement", "build_formats", "measure_formats"),
                    "lth_suite.analysis.inference"),
}

__all__ = [
    # registering components (no torch)
    "hookimpl", "RegisterFn", "lazy", "LazyFactory", "NoParams", "DatasetParams",
    # errors a plugin raises or meets
    "LthError", "SpecError", "DataError", "DataMissing", "UnknownComponentError", "PluginFailure",
    "Diverged",
    # criteria
    "Criterion", "PruneRequest", "Group", "Mask", "Layer", "keep_top", "prunable_layers",
    # allocations and dynamic sparse training
    "Allocation", "LayerShape", "DynamicSparsity", "MaskUpdater", "UpdaterContext",
    # datasets and architectures (and the module types whose weights are prunable)
    "PrunableModule", "ModelDataConfig", "DataInfo", "RawData", "Splits", "Augment",
    "StreamedData", "StreamedSet", "StreamedSplits",
    # training, optimizers and learning-rate decays
    "TrainConfig", "TrainResult", "Step", "StepCallback", "Optimizer", "OptimizerBuilder",
    "FusedOptimizer", "Decay",
    # tasks: how a batch reaches the model, its loss and its metrics
    "Task", "CLASSIFICATION", "IGNORE_INDEX",
    # rewinds
    "Rewind", "RewindContext", "RewindPoint", "State",
    # controls
    "Control", "ControlContext", "ControlStart",
    # analyzers and experiment events
    "Analyzer", "Analysis", "BranchResult", "LevelFinished", "ExperimentFinished",
    # launchers
    "Launcher", "Job", "Unit", "UnitGraph", "Outcome", "Execute", "UnitFailed", "run_in_order",
    "WorkerPool", "UnitJob", "UnitDone", "launched", "check_data_parallel", "Rendezvous",
    "follow_unit", "free_port", "lead",
    # the experiment and its spec
    "Experiment", "ExperimentSpec", "Duration", "Acceleration",
    # branch names: the ticket and the controls
    "TICKET", "REINIT", "RANDOM_PRUNE", "CONTROLS", "BRANCHES",
    # helpers for criteria, allocations, datasets, analyzers and rewinds
    "derive_seed", "top_positions", "uniform_counts", "erk_counts", "RandomCropFlip", "train",
    "evaluate", "snapshot", "usable_cores", "iou", "chance_iou", "chance_iou_pooled",
    # linear mode connectivity (the instability analyzer, searched rewinds)
    "interpolate", "barriers", "linear_path", "copy_config", "train_copies",
    # inference formats and their measurement
    "Format", "FormatRequest", "Representation", "MeasureSettings", "Measurement",
    "build_formats", "measure_formats",
]


def __getattr__(name: str) -> Any:
    """A torch-bearing name, imported from its module on first access and kept here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    """Every public name, the lazy ones included, without importing them."""
    return sorted(set(globals()) | set(__all__))
