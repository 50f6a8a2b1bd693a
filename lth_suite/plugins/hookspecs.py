"""The whole extension surface of lth-suite: every hook a plugin may implement.

Every built-in architecture, dataset, criterion, rewind, analyzer, launcher and control is registered
through these hooks, exactly like a third-party plugin's. A plugin module implements
any subset of them with ``@hookimpl``; a misspelled hook name is an error at load time.
The hooks are grouped by when they are called, as pytest's are: registration hooks
once when the plugins load, then experiment events while an experiment runs. The
types named below are importable from ``lth_suite.api``; docs/plugins.md gives their fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # the events module imports torch: plugin loading must not
    from pydantic import BaseModel

    from ..lottery.events import ExperimentFinished, LevelFinished
    from ..pruning.prunable import PrunableModule
    from .params import ModelDataConfig
    from .registry import RegisterFn

PROJECT = "lth_suite"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -------------------------------------------------------------------------------------------
# Registration hooks (called once when plugins load)
#
# Each receives ``register(name, factory, params_model=NoParams, description="")`` and calls
# it once per component; the factory is called with the validated params (an instance of
# ``params_model``) when a spec uses the component. Register torch code with
# ``lazy("package.module:attribute")`` so that loading the plugin imports no torch.
# -------------------------------------------------------------------------------------------


@hookspec
def lth_register_architectures(register: RegisterFn) -> None:
    """Register architectures: ``factory(params, data_info: DataInfo) -> torch.nn.Module``.

    The weights of torch's linear, convolution, transposed convolution and multi-head
    attention modules are prunable (each a ``Layer``), and those of the module types
    plugins declare (``lth_prunable_modules``); the last ``nn.Linear`` is the output layer
    unless the module sets ``output_layer`` (a module name).
    The runner seeds torch before each call: draw the initialisation from torch's
    global generator only.
    """


@hookspec
def lth_register_datasets(register: RegisterFn) -> None:
    """Register datasets: ``factory(params: DatasetParams, seed: int) -> RawData``, or
    ``StreamedData`` for data read from storage batch by batch.

    Params models subclass ``DatasetParams``; the core carves the validation split and
    the subset out of the returned training arrays (the ``Splits`` criteria receive), or
    out of the indices of the streamed training examples.
    """


@hookspec
def lth_register_criteria(register: RegisterFn) -> None:
    """Register pruning criteria: ``factory(params) -> Criterion``, a ``PruneRequest -> Mask``.

    The new ``Mask`` must be a subset of ``request.mask`` and keep exactly ``keep``
    weights in each ``Group`` of ``request.groups`` (``keep_top`` does both).
    """


@hookspec
def lth_register_rewinds(register: RegisterFn) -> None:
    """Register rewind strategies: ``factory(params) -> Rewind``.

    ``Rewind.capture_iteration(TrainConfig)`` names the iteration of the dense training
    whose weights it needs; ``Rewind(RewindContext) -> RewindPoint`` gives the weights
    and schedule position every pruned level trains from (the mask is applied to them).
    """


@hookspec
def lth_register_analyzers(register: RegisterFn) -> None:
    """Register analyzers: ``factory(params) -> Analyzer``.

    ``Analyzer.after_level(LevelFinished)`` and ``Analyzer.after_experiment(ExperimentFinished)``
    each return an ``Analysis`` or a mapping of metric name to number.
    """


@hookspec
def lth_register_launchers(register: RegisterFn) -> None:
    """Register launchers: ``factory(params) -> Launcher``.

    ``Launcher.launch(jobs: Sequence[Job]) -> list[Outcome]`` runs every ``Unit`` of each
    job's ``UnitGraph`` after its dependencies (in process, or as tasks of a cluster);
    the spec's ``launcher`` section picks one.
    """


@hookspec
def lth_register_allocations(register: RegisterFn) -> None:
    """Register layer-wise density allocations: ``factory(params) -> Allocation``.

    ``Allocation(layers: list[LayerShape], density: float) -> list[int]`` gives each
    layer's kept weights so that they total ``density`` of all of them (rounded);
    ``lth_suite.pruning.allocation`` has the helpers the built-ins use.
    """


@hookspec
def lth_register_dynamic_sparsity(register: RegisterFn) -> None:
    """Register dynamic sparse training methods: ``factory(params) -> DynamicSparsity``.

    ``DynamicSparsity.updater(UpdaterContext) -> MaskUpdater``: a step callback that
    moves the kept weights of one training (keeping every layer's count exactly), and
    whose ``mask()`` is the mask at the end.
    """


@hookspec
def lth_register_formats(register: RegisterFn) -> None:
    """Register inference formats: ``factory(params) -> Format``.

    ``Format(FormatRequest) -> Representation``: the ticket's masked dense network
    (``request.model``, pruned weights zero) rebuilt in another runnable form (a kernel
    library's sparse layers, a compiled sparse runtime), or ``Representation(None, reason)``
    where the format does not apply. The ``inference`` analyzer and ``lth-suite bench``
    check its outputs against the masked dense network before timing it.
    """


@hookspec
def lth_register_optimizers(register: RegisterFn) -> None:
    """Register optimizers: ``factory(params) -> OptimizerBuilder``.

    ``OptimizerBuilder(params: list[Tensor], config: TrainConfig) -> Optimizer`` is called
    at the start of every training, so a rewind always starts from fresh state; the loop
    zeroes pruned weights' gradients before ``Optimizer.step()`` and re-applies the mask
    after it, so no optimizer (decoupled weight decay included) revives a pruned weight.
    ``training.optimizer`` picks one; the built-ins are ``sgd``, ``adam`` and ``adamw``.
    """


@hookspec
def lth_register_controls(register: RegisterFn) -> None:
    """Register controls: ``factory(params) -> Control``, a ``ControlContext -> ControlStart``.

    A control is a sibling branch of the ticket at every pruned level that tests the
    hypothesis (``reinit``, ``random_prune``, the literature's sanity checks): from the
    ticket's context (its mask, the replicate's starting and trained weights, the rewind
    point, the criterion, the data, a seeded generator) it returns the mask and the
    starting point its branch trains from. Its registered name is its branch's name and
    its description the branch's legend; ``Control.refusal(criterion)``, when defined,
    refuses a criterion it cannot work with before anything trains.
    """


@hookspec
def lth_register_schedules(register: RegisterFn) -> None:
    """Register learning-rate decays: ``factory(params) -> Decay``.

    ``Decay(step, steps) -> float`` is the factor of ``training.lr`` at ``step`` of the
    ``steps`` after the warmup; ``training.schedule.decay`` picks one (built in:
    ``cosine``, ``linear``), in place of the milestones.
    """


@hookspec
def lth_register_tasks(register: RegisterFn) -> None:
    """Register tasks: ``factory(params) -> Task``.

    A task says how a batch reaches the model, the loss and the metrics:
    ``Task.loss(output, targets, label_smoothing)`` is the training loss of one batch
    (``output`` is ``model(inputs)``), ``Task.sums(output, targets)`` the evaluation sums
    of one batch and ``Task.finish(sums)`` a split's mean ``loss`` and ``Task.metrics``.
    The early stop is the evaluation with the lowest validation loss. The spec's ``task``
    picks one (built in: ``classification``, the default, ``causal_lm`` and
    ``sequence_classification``).
    """


# -------------------------------------------------------------------------------------------
# Experiment events (called while an experiment runs)
#
# Return values are ignored; the events are shared with the analyzers and the tracker,
# so an implementation reads them and never changes them. An exception becomes a
# PluginFailure that fails the experiment.
# -------------------------------------------------------------------------------------------


@hookspec
def lth_level_finished(event: LevelFinished) -> None:
    """Called once per level with a ``LevelFinished``, after its summary and analyzer metrics.

    Every replicate and branch of the level has trained (its ``BranchResult``s are in
    ``event.branches``). A resumed experiment calls it again for every level whose hooks
    had not all returned before the interruption.
    """


@hookspec
def lth_experiment_finished(event: ExperimentFinished) -> None:
    """Called once with an ``ExperimentFinished``, after the last level and ``after_experiment``.

    The parent run is still open; a resume of an experiment that failed here calls it again.
    """


# -------------------------------------------------------------------------------------------
# Model inspection (called when an experiment is prepared)
#
# Returns declarations rather than calling ``register``: they are plain data, read each
# time a model's prunable tensors are found, or its expected input is looked up.
# -------------------------------------------------------------------------------------------


@hookspec
def lth_prunable_modules() -> Sequence[PrunableModule]:
    """Declare module types whose weights are prunable: a sequence of ``PrunableModule``.

    Each names a module class (or a ``"package.module:Class"`` string, so declaring it
    imports nothing), the parameters of it that are weights, their layer kind and the
    axis of their inputs (0 for a weight stored as (in, out)). Declarations are checked
    before the built-in ones, so a library's subclass of ``nn.Linear`` can be declared
    differently.
    """


@hookspec(firstresult=True)
def lth_model_data_config(params: BaseModel) -> ModelDataConfig | None:
    """The input the spec's model expects, when its architecture states one: a
    ``ModelDataConfig`` (input size, mean, std, interpolation, crop fraction), else None.

    ``params`` are the spec's validated model params; answer only for an instance of your
    own architecture's params model. The first answer wins. Each field a dataset's params
    model also has, and that the spec left unset (None), takes the answer's value, so a
    timm model's own normalisation reaches an image folder unless the spec gives one.
    """
