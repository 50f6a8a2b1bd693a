"""A ticket exported in one runnable format, and the loader that rebuilds it.

``save_format`` writes ``format.json`` (the format, the architecture and how to build
it) and ``ticket_<format>.pt``, a flat dict of plain tensors: CSR weights as their
``crow_indices``, ``col_indices`` and ``values``, a shrunk network's chain of layers
described in the JSON. ``load_exported`` reads them back with ``weights_only=True``
(nothing is unpickled) and returns a runnable network in evaluation mode.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import LthError
from .formats import SparseConv2d, SparseLinear

if TYPE_CHECKING:
    from ..plugins.manager import Plugins

FORMAT_JSON = "format.json"
EXPORTABLE = ("dense", "csr", "shrunk", "2:4")
CHAIN_LAYERS = {"Linear": nn.Linear, "Conv2d": nn.Conv2d, "ReLU": nn.ReLU,
                "Dropout": nn.Dropout, "Identity": nn.Identity, "MaxPool2d": nn.MaxPool2d,
                "Flatten": nn.Flatten}


@dataclass
class Architecture:
    """How to build the ticket's network: the registered architecture and its data."""

    name: str
    params: dict[str, Any]
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int


def weights_file(name: str) -> str:
    """The tensor file of one format: ``ticket_csr.pt``, ``ticket_2-4.pt``."""
    return f"ticket_{name.replace(':', '-')}.pt"


def _layer_config(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments of one layer of a shrunk chain."""
    kind = type(module).__name__
    if kind == "Linear":
        return {"in_features": module.in_features, "out_features": module.out_features,
                "bias": module.bias is not None}
    if kind == "Conv2d":
        return {"in_channels": module.in_channels, "out_channels": module.out_channels,
                "kernel_size": list(module.kernel_size), "stride": list(module.stride),
                "padding": list(module.padding), "dilation": list(module.dilation),
                "bias": module.bias is not None}
    if kind == "MaxPool2d":
        return {"kernel_size": module.kernel_size, "stride": module.stride,
                "padding": module.padding}
    if kind == "Flatten":
        return {"start_dim": module.start_dim, "end_dim": module.end_dim}
    return {}


def _sparse_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state of a CSR network as plain tensors."""
    tensors = {}
    for key, value in model.state_dict().items():
        if value.layout is torch.sparse_csr:
            tensors[f"{key}.crow_indices"] = value.crow_indices()
            tensors[f"{key}.col_indices"] = value.col_indices()
            tensors[f"{key}.values"] = value.values()
            tensors[f"{key}.size"] = torch.tensor(value.shape)
        else:
            tensors[key] = value
    return tensors


def save_format(name: str, model: nn.Module, architecture: Architecture, folder: Path,
                converted: list[str]) -> list[Path]:
    """Write one built format of a ticket (``model`` as the format built it; CPU)."""
    if name not in EXPORTABLE:
        raise LthError(f"export --format: '{name}' cannot be written; choose one of "
                       f"{', '.join(EXPORTABLE)} or auto")
    meta: dict[str, Any] = {"format": name, "architecture": architecture.__dict__,
                            "converted": converted, "weights": weights_file(name)}
    if name == "shrunk":
        meta["chain"] = [{"name": n, "type": type(m).__name__, "config": _layer_config(m)}
                         for n, m in model.named_children()]
        tensors = dict(model.state_dict())
    elif name == "csr":
        tensors = _sparse_tensors(model)
    else:  # dense and 2:4 keep the masked dense weights; 2:4 is converted on CUDA at load
        tensors = dict(model.state_dict())
        meta["dtype"] = "float16" if name == "2:4" else "float32"
    weights = folder / weights_file(name)
    torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, weights)
    meta_path = folder / FORMAT_JSON
    meta_path.write_text(json.dumps(meta, indent=2, default=list) + "\n", encoding="utf-8")
    return [weights, meta_path]


def load_exported(folder: Path, plugins: Plugins | None = None,
                  device: str = "cpu") -> nn.Module:
    """The runnable network of an export folder written with ``export --format``."""
    meta_path = Path(folder) / FORMAT_JSON
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        name = meta["format"]
        tensors = torch.load(Path(folder) / meta["weights"], map_location="cpu",
                             weights_only=True)
    except FileNotFoundError as exc:
        raise LthError(f"{exc.filename}: not found (write it with lth-suite export --format)"
                       ) from None
    except (ValueError, KeyError, RuntimeError) as exc:
        raise LthError(f"{meta_path}: not a readable export ({exc})") from None
    if name == "shrunk":
        model: nn.Module = nn.Sequential(OrderedDict(
            (layer["name"], CHAIN_LAYERS[layer["type"]](**layer["config"]))
            for layer in meta["chain"]))
        model.load_state_dict(tensors)
        return model.to(device).eval()
    model = _build(Architecture(**meta["architecture"]), plugins)
    if name == "csr":
        _load_csr(model, tensors)
        return model.to(device).eval()
    model.load_state_dict(tensors)
    if name == "2:4":
        if not torch.cuda.is_available():
            raise LthError(f"{meta_path}: a 2:4 export runs on CUDA only, and there is none here")
        from torch.sparse import to_sparse_semi_structured

        model = model.to("cuda", torch.float16)
        for weight in meta["converted"]:
            module = model.get_submodule(weight.rsplit(".", 1)[0])
            module.weight = nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                         requires_grad=False)
        return model.eval()
    return model.to(device).eval()


def _build(architecture: Architecture, plugins: Plugins | None) -> nn.Module:
    from ..plugins.manager import load_plugins
    from ..training.data import DataInfo

    plugins = plugins or load_plugins()
    info = DataInfo(architecture.dataset, tuple(architecture.input_shape),
                    architecture.num_classes)
    with torch.random.fork_rng(devices=[]):  # the weights are replaced: keep the generator
        return plugins.registry.build("architecture", architecture.name, architecture.params,
                                      info)


def _load_csr(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Dense tensors into the model, then each CSR weight's module swapped for its sparse
    twin (the same conversion ``csr`` makes), its tensor rebuilt from the parts."""
    sparse_keys = {k.rsplit(".", 1)[0] for k in tensors if k.endswith(".crow_indices")}
    dense = {k: v for k, v in tensors.items()
             if k.rsplit(".", 1)[0] not in sparse_keys}
    try:  # the invariants checked: a damaged file must fail here, not crash a kernel later
        weights = {key: torch.sparse_csr_tensor(tensors[f"{key}.crow_indices"],
                                                tensors[f"{key}.col_indices"],
                                                tensors[f"{key}.values"],
                                                tuple(tensors[f"{key}.size"].tolist()),
                                                check_invariants=True)
                   for key in sparse_keys}
    except (KeyError, RuntimeError, ValueError) as exc:
        raise LthError(f"the CSR export is damaged: {str(exc).splitlines()[0]}") from None
    # Dense weights of the layers to be swapped are absent from the file: start them at zero.
    missing = model.load_state_dict(dense, strict=False).missing_keys
    unknown = [k for k in missing if k not in weights]
    if unknown:
        raise LthError(f"the CSR export lacks tensor {unknown[0]}")
    for key, weight in weights.items():
        module_name = key.rsplit(".", 1)[0]
        module = model.get_submodule(module_name)
        bias = getattr(module, "bias", None)
        bias = None if bias is None else bias.detach().clone()
        twin = (SparseLinear(weight, bias) if isinstance(module, nn.Linear)
                else SparseConv2d(module, weight))
        parent, _, child = module_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, twin)
