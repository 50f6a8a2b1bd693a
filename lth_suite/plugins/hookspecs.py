"""The whole extension surface of lth-suite.

Every built-in architecture, dataset, criterion, rewind, analyzer and launcher is registered
through these hooks, exactly like a third-party plugin's. A plugin module implements
any subset of them with ``@hookimpl``; a misspelled hook name is an error at load time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..lottery.events import ExperimentFinished, LevelFinished
    from .registry import RegisterFn

PROJECT = "lth_suite"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lth_register_architectures(register: RegisterFn) -> None:
    """Register architectures: ``factory(params, data_info) -> torch.nn.Module``.

    The module's ``nn.Conv2d`` and ``nn.Linear`` weights are prunable; the last
    ``nn.Linear`` is the output layer unless the module sets ``output_layer``.
    """


@hookspec
def lth_register_datasets(register: RegisterFn) -> None:
    """Register datasets: ``factory(params, seed) -> lth_suite.training.data.RawData``.

    Params models subclass ``lth_suite.training.data.DatasetParams``; the core carves the
    validation split and the subset from the returned training arrays.
    """


@hookspec
def lth_register_criteria(register: RegisterFn) -> None:
    """Register pruning criteria: ``factory(params) -> callable(PruneRequest) -> Mask``.

    The new mask must be a subset of ``request.mask`` and keep exactly
    ``group.keep`` weights in each group (``lth_suite.pruning.masks.keep_top`` does both).
    """


@hookspec
def lth_register_rewinds(register: RegisterFn) -> None:
    """Register rewind strategies: ``factory(params) -> lth_suite.lottery.rewinding.Rewind``.

    A rewind names the iteration of the dense training whose weights it needs and
    returns the weights and schedule position every pruned level trains from.
    """


@hookspec
def lth_register_analyzers(register: RegisterFn) -> None:
    """Register analyzers: ``factory(params) -> lth_suite.lottery.analyzers.Analyzer``.

    An analyzer turns a finished level (and the finished experiment) into metrics.
    """


@hookspec
def lth_register_launchers(register: RegisterFn) -> None:
    """Register launchers: ``factory(params) -> lth_suite.launch.units.Launcher``.

    A launcher receives the unit graph of one or more experiments and the function that
    trains one unit, and runs every unit after its dependencies (in process, or as
    tasks of a cluster); the spec's ``launcher`` section picks one.
    """


@hookspec
def lth_level_finished(event: LevelFinished) -> None:
    """Called after every (replicate, level) once all its branches have trained."""


@hookspec
def lth_experiment_finished(event: ExperimentFinished) -> None:
    """Called once after the last level of the last replicate."""
