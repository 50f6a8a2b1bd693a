"""Which tensors of a model are prunable: module types and the weights they declare.

A ``PrunableModule`` names a module class and the parameters of it that carry weights
(``nn.Linear``'s ``weight``, ``nn.MultiheadAttention``'s ``in_proj_weight``...). The
built-in declarations cover torch's weight-bearing layers; a plugin declares a library's
own layer classes through the ``lth_prunable_modules`` hook, without touching the core.
Everything else (norms, biases, positional embeddings, class tokens, embeddings) is
pruned only when a spec names the parameter itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from ..errors import LthError

LAYER_KINDS = ("conv", "linear", "output")
NAMED = "named"  # the kind of a parameter that is prunable only because a spec named it


@dataclass(frozen=True)
class Layer:
    """A prunable weight tensor: its parameter name and its kind."""

    name: str  # parameter name in the state dict, e.g. "fc1.weight"
    kind: str  # "conv", "linear", "output", "named", or a kind a plugin declares
    numel: int
    # The axis of the tensor that runs over the layer's inputs (its fan-in): 1 for
    # nn.Linear and convolutions, 0 for transposed convolutions and for layers that store
    # their weight as (in, out), as GPT-2's Conv1D does. N:M groups and shrinking use it.
    in_axis: int = 1


@dataclass(frozen=True)
class PrunableModule:
    """A module type whose named parameters are prunable weights.

    ``module_type`` is a class or, so that declaring it imports nothing, a
    ``"package.module:Class"`` string resolved when a model is inspected (a library that is
    not installed then simply has no such modules). A parameter the module sets to None
    (``nn.MultiheadAttention``'s separate q/k/v projections when it uses one) is skipped.
    """

    module_type: type[nn.Module] | str
    parameters: tuple[str, ...] = ("weight",)
    kind: str = "linear"
    in_axis: int = 1

    def resolve(self) -> type[nn.Module] | None:
        """The module class, or None when its library is not installed."""
        if not isinstance(self.module_type, str):
            return self.module_type
        module_name, _, attribute = self.module_type.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except ImportError:
            return None
        except AttributeError:
            raise LthError(f"prunable module '{self.module_type}': {module_name} has no "
                           f"'{attribute}'") from None


# Order matters only among related classes: the first declaration a module is an
# instance of wins (plugin declarations come before these).
BUILTIN_MODULES: tuple[PrunableModule, ...] = (
    PrunableModule(nn.Linear, kind="linear"),  # MultiheadAttention's out_proj is one too
    PrunableModule(nn.Conv1d, kind="conv"),
    PrunableModule(nn.Conv2d, kind="conv"),
    PrunableModule(nn.Conv3d, kind="conv"),
    # A transposed convolution's weight is (in, out / groups, *kernel).
    PrunableModule(nn.ConvTranspose1d, kind="conv", in_axis=0),
    PrunableModule(nn.ConvTranspose2d, kind="conv", in_axis=0),
    PrunableModule(nn.ConvTranspose3d, kind="conv", in_axis=0),
    PrunableModule(nn.MultiheadAttention, kind="linear",
                   parameters=("in_proj_weight", "q_proj_weight", "k_proj_weight",
                               "v_proj_weight")),
)


def _declaration(module: nn.Module, declared: Sequence[tuple[type, PrunableModule]]
                 ) -> PrunableModule | None:
    return next((d for cls, d in declared if isinstance(module, cls)), None)


def prunable_layers(model: nn.Module, modules: Iterable[PrunableModule] = (),
                    named: Iterable[str] = ()) -> list[Layer]:
    """The prunable weights of ``model``, in module order.

    ``modules`` are declarations checked before the built-in ones (a plugin's); ``named``
    are exact parameter names made prunable beyond them (kind ``named``). A parameter
    shared by several modules (tied weights) is one layer, under the name
    ``named_parameters()`` gives it, counted once. The output layer is
    ``model.output_layer`` (a module name) when set, else the last ``nn.Linear`` in
    module order; its weight has kind ``output``. A weight tied to a module that is not
    prunable (an output layer sharing the input embedding's matrix) is an embedding: pruned
    only when named, and then with one mask for both.
    """
    declared = [(cls, d) for d in (*modules, *BUILTIN_MODULES) if (cls := d.resolve()) is not None]
    canonical = {id(p): name for name, p in model.named_parameters()}
    found: list[tuple[str, nn.Module, str, PrunableModule]] = []  # module, its name, param
    for module_name, module in model.named_modules():
        declaration = _declaration(module, declared)
        if declaration is None:
            continue
        for attribute in declaration.parameters:
            if isinstance(getattr(module, attribute, None), nn.Parameter):
                found.append((module_name, module, attribute, declaration))
    linear = [n for n, m, _, _ in found if isinstance(m, nn.Linear)]
    output = getattr(model, "output_layer", None) or (linear[-1] if linear else None)
    if output is not None and output not in {n for n, _, _, _ in found}:
        known = ", ".join(dict.fromkeys(n for n, _, _, _ in found)) or "none"
        raise LthError(f"{type(model).__name__}.output_layer is '{output}', which is not a "
                       f"module with prunable weights (known: {known})")
    undeclared = {id(p) for m in model.modules() if _declaration(m, declared) is None
                  for p in m.parameters(recurse=False)}
    layers: dict[int, Layer] = {}
    for module_name, module, attribute, declaration in found:
        param = getattr(module, attribute)
        if id(param) in undeclared:
            continue
        kind = "output" if module_name == output else declaration.kind
        if id(param) in layers:  # tied: the output layer's kind wins, the name stays
            if kind == "output":
                layers[id(param)] = Layer(layers[id(param)].name, kind, param.numel(),
                                          declaration.in_axis)
            continue
        layers[id(param)] = Layer(canonical[id(param)], kind, param.numel(), declaration.in_axis)
    params = dict(model.named_parameters())
    for name in named:
        if name in params and id(params[name]) not in layers:
            layers[id(params[name])] = Layer(name, NAMED, params[name].numel())
    return list(layers.values())
