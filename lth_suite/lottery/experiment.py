"""Everything resolved before training starts: device, data, components, config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import LthError, SpecError
from ..plugins.manager import Plugins
from ..pruning import nm
from ..pruning.allocation import Allocation
from ..pruning.masks import Layer, prunable_layers
from ..pruning.targets import layer_fraction, matches
from ..spec.loading import spec_hash
from ..spec.sections import ExperimentSpec, Pruning
from ..tracking.names import TICKET
from ..training.config import TrainConfig
from ..training.data import DatasetParams, split_validation
from ..training.dynamic import DynamicSparsity
from ..training.streaming import AnySplits, StreamedData, split_streamed
from ..training.threads import auto_threads, step_macs
from .controls import Control, capture_iteration, refusal
from .pretrained import load_pretrained, read_pretrained
from .rewinding import Rewind, searched


def resolve_device(choice: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise LthError("device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@dataclass
class Experiment:
    """A validated spec with its data, components and resolved training config."""

    spec: ExperimentSpec
    hash: str
    plugins: Plugins
    device: torch.device
    data: AnySplits
    config: TrainConfig
    criterion: Any
    rewind: Rewind
    analyzers: list[tuple[str, Any]]
    layers: list[Layer]
    allocation: Allocation | None = None  # the spec's sparsity.allocation, built
    dynamic: DynamicSparsity | None = None  # the spec's sparsity.dynamic, built
    # The spec's enabled controls, built, by branch name (the name the spec gives them).
    controls_built: dict[str, Control] = field(default_factory=dict)
    # Iterations of the dense training whose weights the controls need, sorted.
    control_captures: tuple[int, ...] = ()
    # The candidate points of a searched rewind (``auto``), in iterations, in order.
    rewind_candidates: tuple[int, ...] = ()
    pretrained: dict[str, torch.Tensor] | None = None  # model.pretrained's tensors, read once
    pretrained_own: tuple[str, ...] = ()  # tensors model.pretrained lacks: seeded initialisation
    notes: list[str] = field(default_factory=list)  # lines worth printing before it runs

    @property
    def dense_captures(self) -> tuple[int, ...]:
        """Iterations of the dense training whose weights are kept (and logged): those the
        controls need and a searched rewind's candidates."""
        return tuple(sorted(set(self.control_captures) | set(self.rewind_candidates)))

    def build_model(self, seed: int, *, pretrained: bool = True) -> nn.Module:
        """A freshly built network; the same seed gives the same weights.

        With ``model.pretrained`` its weights are the pretrained ones, unless
        ``pretrained`` is False (the architecture's own initialisation, for ``reinit``).
        """
        torch.manual_seed(seed)
        model = self.plugins.registry.build("architecture", self.spec.model.name,
                                            self.spec.model.params, self.data.info)
        if pretrained and self.pretrained is not None:
            load_pretrained(model, self.pretrained, str(self.spec.model.pretrained),
                            self.pretrained_own)
        return model.to(self.device)

    def branches(self) -> list[str]:
        """The branches trained at every pruned level."""
        return [TICKET, *self.controls()]

    def controls(self) -> list[str]:
        """The controls the spec asks for, trained beside every pruned level's ticket."""
        return self.spec.controls.enabled()

    def controlled_levels(self) -> int:
        """How many levels have controls: the pruned ones, and level 0 when it is sparse."""
        return self.spec.pruning.levels + (1 if self.dynamic is not None else 0)

    def trainings(self) -> int:
        """How many networks the experiment trains in all."""
        return self.spec.experiment.replicates * (
            1 + self.spec.pruning.levels + self.controlled_levels() * len(self.controls()))


def recipe_components(spec: ExperimentSpec, plugins: Plugins) -> dict[str, Any]:
    """The spec's optimizer builder, schedule decay and task, as their plugins build them."""
    training, registry = spec.training, plugins.registry
    decay = training.schedule.decay
    return {
        "build_optimizer": registry.build("optimizer", training.optimizer.name,
                                          training.optimizer.params),
        "decay": registry.build("schedule", decay.name, decay.params) if decay else None,
        "task": registry.build("task", spec.task.name, spec.task.params),
    }


def dataset_params(spec: ExperimentSpec, plugins: Plugins) -> tuple[Any, str | None]:
    """The spec's dataset params, their unset fields taken from the model's data config
    (``lth_model_data_config``), and a line saying which were, or None."""
    dataset = plugins.registry.get("dataset", spec.dataset.name)
    params = dataset.params_model.model_validate(spec.dataset.params)
    architecture = plugins.registry.get("architecture", spec.model.name)
    config = plugins.model_data_config(
        architecture.params_model.model_validate(spec.model.params))
    if config is None:
        return params, None
    fields = type(params).model_fields
    taken = {key: value for key, value in config.fields().items()
             if key in fields and getattr(params, key) is None}
    if not taken:
        return params, None
    params = dataset.params_model.model_validate({**spec.dataset.params, **taken})
    said = ", ".join(f"{key} {value}" for key, value in taken.items())
    return params, (f"dataset {spec.dataset.name}: {said}, from model {spec.model.name}'s data "
                    "config (set them in dataset to override)")


def load_dataset(spec: ExperimentSpec, plugins: Plugins) -> tuple[Any, Any, str | None]:
    """The spec's dataset params (``dataset_params``), its loaded data, and the note."""
    params, note = dataset_params(spec, plugins)
    factory = plugins.registry.get("dataset", spec.dataset.name).factory
    return params, factory(params, spec.experiment.seed), note


def prepare(spec: ExperimentSpec, plugins: Plugins) -> Experiment:
    """Load the data and build every component; no training, no tracking."""
    registry = plugins.registry
    device = resolve_device(spec.device)
    params, raw, data_note = load_dataset(spec, plugins)
    if not isinstance(params, DatasetParams):
        raise LthError(f"dataset '{spec.dataset.name}': its params model must subclass "
                       "lth_suite.training.data.DatasetParams")
    split = split_streamed if isinstance(raw, StreamedData) else split_validation
    data = split(raw, params).to(device)
    n_train = data.sizes()["train"]
    recipe = recipe_components(spec, plugins)
    config = TrainConfig.resolve(spec.training, n_train, **recipe)
    if spec.training.batch_size > n_train:
        raise SpecError([("training.batch_size", f"{spec.training.batch_size} is larger than the "
                          f"{n_train} training examples")])
    if config.total < 1:
        raise SpecError([("training.duration", "must be at least one iteration")])
    rewind = registry.build("rewind", spec.rewind.name, spec.rewind.params)
    capture = rewind.capture_iteration(config)
    if capture is not None and capture > config.total:
        raise SpecError([("rewind.iteration", f"{capture} is beyond the training's "
                          f"{config.total} iterations")])
    candidates = rewind_candidates(rewind, config)
    experiment = Experiment(
        spec=spec, hash=spec_hash(spec), plugins=plugins, device=device, data=data,
        config=config,
        criterion=registry.build("criterion", spec.pruning.criterion.name,
                                 spec.pruning.criterion.params),
        rewind=rewind,
        analyzers=[(a.name, registry.build("analyzer", a.name, a.params)) for a in spec.analyzers],
        layers=[],
        notes=[data_note] if data_note else [],
    )
    experiment.rewind_candidates = candidates
    experiment.controls_built = build_controls(spec, plugins, experiment.criterion)
    experiment.control_captures = control_captures(experiment.controls_built, config)
    sparsity = spec.sparsity
    if sparsity is not None and sparsity.allocation is not None:
        experiment.allocation = registry.build("allocation", sparsity.allocation.name,
                                               sparsity.allocation.params)
    if sparsity is not None and sparsity.dynamic is not None:
        experiment.dynamic = registry.build("dynamic", sparsity.dynamic.name,
                                            sparsity.dynamic.params)
    try:
        probe = experiment.build_model(spec.experiment.seed, pretrained=False)
    except (ValueError, RuntimeError) as exc:
        raise SpecError([("model", f"cannot build '{spec.model.name}' for "
                          f"{data.info.name} {data.info.input_shape}: {exc}")]) from None
    if spec.model.pretrained is not None:  # read once; checked against the model here
        source = spec.model.pretrained
        experiment.pretrained, experiment.pretrained_own = read_pretrained(probe, source)
        load_pretrained(probe, experiment.pretrained, source, experiment.pretrained_own)
        own = experiment.pretrained_own
        if own:
            more = f" and {len(own) - 3} more" if len(own) > 3 else ""
            experiment.notes.append(f"model.pretrained: {source} has no {', '.join(own[:3])}"
                                    f"{more}: they keep the architecture's seeded initialisation")
    named = [key for key in spec.pruning.fraction.patterns
             if key in dict(probe.named_parameters())]
    experiment.layers = prunable_layers(probe, plugins.prunable_modules(), named)
    if spec.training.threads == "auto" and device.type == "cpu":
        macs = step_macs(probe, data.info.input_shape, spec.training.batch_size)
        experiment.config = TrainConfig.resolve(spec.training, n_train,
                                                auto_threads(macs), **recipe)
    _check_pattern(spec, experiment.layers, {k: tuple(v.shape) for k, v in probe.named_parameters()})
    check_patterns(spec.pruning, experiment.layers)
    return experiment


def _check_pattern(spec: ExperimentSpec, layers: list[Layer],
                   shapes: dict[str, tuple[int, ...]]) -> None:
    """An N:M pattern that no pruned layer's input splits into would prune nothing."""
    sparsity = spec.sparsity
    if sparsity is None or sparsity.pattern is None:
        return
    m = sparsity.nm()[1]
    pruned = [shapes[layer.name] for layer in layers
              if layer_fraction(layer, spec.pruning) is not None]
    if not any(nm.fits(shape, m) for shape in pruned):
        widths = sorted({shape[1] for shape in pruned if len(shape) > 1})
        raise SpecError([("sparsity.pattern", f"'{sparsity.pattern}': no pruned layer's input "
                          f"splits into groups of {m} (input widths: "
                          f"{', '.join(map(str, widths)) or 'none'}), so nothing would be pruned")])
def rewind_candidates(rewind: Rewind, config: TrainConfig) -> tuple[int, ...]:
    """A searched rewind's candidates in iterations; out of order or beyond the training
    is a spec error on ``rewind.candidates``."""
    search = searched(rewind)
    if search is None:
        return ()
    candidates = search.candidate_iterations(config)
    if any(b <= a for a, b in zip(candidates, candidates[1:])):
        raise SpecError([("rewind.candidates", f"{candidates} (in iterations) must be "
                          "increasing, without repeats")])
    beyond = [c for c in candidates if c >= config.total]
    if beyond:
        raise SpecError([("rewind.candidates", f"{beyond[0]} is not before the end of the "
                          f"training's {config.total} iterations")])
    budget = search.budget(config)
    if budget is not None and budget < 1:
        raise SpecError([("rewind.iterations", "the budget must be at least one iteration")])
    return tuple(candidates)


def build_controls(spec: ExperimentSpec, plugins: Plugins, criterion: Any) -> dict[str, Control]:
    """The spec's enabled controls, built; one that refuses the criterion is a spec error."""
    built: dict[str, Control] = {}
    problems = []
    for name in spec.controls.enabled():
        control = plugins.registry.build("control", name, spec.controls.params(name))
        reason = refusal(control, criterion)
        if reason is not None:
            problems.append((f"controls.{name}", reason))
        built[name] = control
    if problems:
        raise SpecError(problems)
    return built


def control_captures(controls: dict[str, Control], config: TrainConfig) -> tuple[int, ...]:
    """The iterations of the dense training the controls need; one beyond the training is
    a spec error on the control."""
    found: set[int] = set()
    for name, control in controls.items():
        iteration = capture_iteration(control, config)
        if iteration is not None and not 0 <= iteration <= config.total:
            raise SpecError([(f"controls.{name}", f"iteration {iteration} is beyond the "
                              f"training's {config.total} iterations")])
        if iteration is not None:
            found.add(iteration)
    return tuple(sorted(found))


SHOWN_LAYERS = 12  # a timm model has hundreds: the error stays one readable line


def check_patterns(rules: Pruning, layers: list[Layer]) -> None:
    """Every name or pattern of ``pruning.exclude`` and ``pruning.fraction`` must find a
    prunable tensor (a typo would otherwise prune what it meant to spare)."""
    problems = []
    for where, patterns in (("pruning.exclude", rules.exclude),
                            ("pruning.fraction", list(rules.fraction.patterns))):
        unknown = [p for p in patterns if not any(p == layer.kind or matches(layer.name, p)
                                                  for layer in layers)]
        if unknown:
            modules = list(dict.fromkeys(layer.name.rsplit(".", 1)[0] for layer in layers))
            known = ", ".join(modules[:SHOWN_LAYERS]) + (
                f", ... ({len(modules)} in all)" if len(modules) > SHOWN_LAYERS else "")
            problems.append((where, f"unknown layer(s) {', '.join(unknown)} (prunable: {known})"))
    if problems:
        raise SpecError(problems)
