"""Export a trained ticket from the store: its masked state dict and mask, and the network
shrunk by ``lth_suite.analysis.shrink`` with its parameter and FLOP counts before and after."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import LthError
from ..lottery.experiment import load_dataset
from ..pruning.masks import Mask
from ..tracking.names import (
    BRANCH_PARAM,
    LEVEL_PARAM,
    MASK_ARTIFACT,
    REPLICATE_PARAM,
    SPEC_ARTIFACT,
    STATE_ARTIFACT,
    TICKET,
)
from ..tracking.stored_weights import load_mask, load_state, refuse_logged_model
from .semistructured import SemiStructured, export_semi_structured
from .shrink import Counts, LayerChange, count, masked_state_dict, shrink

if TYPE_CHECKING:
    from ..plugins.manager import Plugins
    from ..tracking import RunRecord, StoreReader

MASKED_STATE = "masked_state_dict.pt"
MASK = MASK_ARTIFACT  # the exported mask keeps the name and format of the stored one
SHRUNK_MODEL = "shrunk_model.pt"
SUMMARY = "export.json"
PRETRAINED = "pretrained"  # the folder of a model's ``export_folder`` (save_pretrained)


@dataclass
class ExportResult:
    """What ``export_run`` wrote, and the sizes before and after."""

    run_id: str
    run_name: str
    architecture: str
    input_shape: tuple[int, ...]
    folder: Path
    files: list[Path]
    before: Counts
    after: Counts | None  # None when the network could not be shrunk
    reason: str  # why not
    layers: list[LayerChange]
    semi_structured: SemiStructured | None = None  # the 2:4 weights as sparse tensors


def rebuild(reader: StoreReader, child: RunRecord, plugins: Plugins | None = None,
            ) -> tuple[nn.Module, Mask, str, tuple[int, ...]]:
    """The trained network of a child run (pruned weights zeroed), its mask, the
    architecture's name and the input shape of one example."""
    import yaml

    from ..errors import SpecError, TrackingError
    from ..plugins.manager import load_plugins
    from ..spec.loading import build_spec
    from ..training.data import DataInfo

    parent = reader.run(child.parent_id)
    if parent is None:
        raise TrackingError(f"run {child.run_id}: its parent run {child.parent_id} is not in "
                            f"{reader.uri}")
    payload = reader.artifact_bytes(child.run_id, MASK_ARTIFACT)
    if payload is None:
        raise TrackingError(f"run {child.run_id} ({child.name}) has no {MASK_ARTIFACT} artifact")
    mask = load_mask(payload, child.run_id, MASK_ARTIFACT)
    state_bytes = reader.artifact_bytes(child.run_id, STATE_ARTIFACT)
    if state_bytes is not None:
        state = load_state(state_bytes, child.run_id, STATE_ARTIFACT)
    else:
        model_name = reader.logged_model_name(child)
        if model_name is not None:
            raise refuse_logged_model(child.run_id, model_name)
        raise TrackingError(f"run {child.run_id} ({child.name}) has neither a "
                            f"{STATE_ARTIFACT} artifact (tracking.log_state_dicts was false) "
                            "nor a logged model")
    spec_text = reader.artifact_bytes(parent.run_id, SPEC_ARTIFACT)
    if spec_text is None:
        raise TrackingError(f"parent run {parent.run_id} has no {SPEC_ARTIFACT} artifact")
    plugins = plugins or load_plugins()
    try:
        spec = build_spec(yaml.safe_load(spec_text.decode("utf-8")) or {}, plugins.registry,
                          f"{SPEC_ARTIFACT} of run {parent.run_id}")
    except SpecError as exc:
        raise LthError("; ".join(exc.lines())) from None
    siblings = [c.run_id for c in reader.children(parent.run_id) if c.run_id != child.run_id]
    shapes = reader.model_shapes(parent, [child.run_id, *siblings])
    if shapes is not None and shapes[1]:
        info = DataInfo(spec.dataset.name, shapes[0], shapes[1][0])
    else:  # no model was logged: the dataset knows its shape (for digits, cheaply)
        try:
            raw = load_dataset(spec, plugins)[1]
        except LthError as exc:
            raise LthError(f"no model was logged to read the input shape from, and dataset "
                           f"'{spec.dataset.name}' cannot be loaded here: {exc}") from None
        info = raw.info
    with torch.random.fork_rng():
        model = plugins.registry.build("architecture", spec.model.name, spec.model.params, info)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise LthError(f"run {child.run_id}: its state dict does not fit {spec.model.name} "
                       f"built for {info.input_shape} ({first})") from None
    params = dict(model.named_parameters())
    wrong = [k for k, v in mask.items() if k not in params or params[k].shape != v.shape]
    if wrong:
        raise LthError(f"run {child.run_id}: {MASK_ARTIFACT} does not fit {spec.model.name} "
                       f"(tensor {wrong[0]})")
    mask.apply_(model)
    return model.eval(), mask, spec.model.name, tuple(info.input_shape)


def export_run(reader: StoreReader, run_id: str, out: Path, plugins: Plugins | None = None,
               ) -> ExportResult:
    """Write a child run's masked state dict, mask and (where possible) shrunk network."""
    from ..errors import TrackingError

    child = reader.run(run_id)
    if child is None:
        raise TrackingError(f"no run {run_id} in {reader.uri}")
    if child.parent_id is None:
        tickets = [c for c in reader.children(child.run_id)
                   if c.params.get(BRANCH_PARAM) == TICKET]
        example = min(tickets, default=None, key=lambda c: (-int(c.params.get(LEVEL_PARAM, 0)),
                                                            c.params.get(REPLICATE_PARAM, "")))
        hint = f", e.g. {example.run_id} ({example.name})" if example else ""
        raise LthError(f"run {run_id} ({child.name}) is an experiment's parent run; export "
                       f"takes one of its child runs{hint}")
    model, mask, architecture, input_shape = rebuild(reader, child, plugins)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LthError(f"{out}: cannot create the export folder ({exc.strerror or exc})") from None
    files = [out / MASKED_STATE, out / MASK]
    torch.save(masked_state_dict(model, mask), files[0])
    files[1].write_bytes(mask.pack())
    export_folder = getattr(model, "export_folder", None)
    if callable(export_folder):  # a library's own format (Hugging Face's save_pretrained)
        folder = out / PRETRAINED
        folder.mkdir(exist_ok=True)
        written = export_folder(folder)
        (folder / MASK).write_bytes(mask.pack())
        files += [*written, folder / MASK]
    before = count(model, input_shape, mask)
    shrunk = shrink(model, mask)
    after = None
    if shrunk.model is not None:
        after = count(shrunk.model, input_shape, shrunk.mask)
        torch.save(shrunk.model, out / SHRUNK_MODEL)
        files.append(out / SHRUNK_MODEL)
    summary = {
        "run_id": child.run_id, "run_name": child.name, "parent_run_id": child.parent_id,
        "architecture": architecture, "input_shape": list(input_shape),
        "files": [str(f.relative_to(out)) for f in files] + [SUMMARY],
        "before": asdict(before), "after": asdict(after) if after else None,
        "shrunk": shrunk.model is not None, "not_shrunk_because": shrunk.reason or None,
        "layers": [asdict(change) for change in shrunk.layers],
    }
    semi = export_semi_structured(model, mask, out)
    if semi.file is not None:
        files.append(semi.file)
    summary["semi_structured"] = {
        "two_four_weights": semi.candidates, "converted": semi.converted,
        "file": semi.file.name if semi.file else None, "dense_because": semi.reason or None}
    summary["files"] = [str(f.relative_to(out)) for f in files] + [SUMMARY]
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    files.append(out / SUMMARY)
    return ExportResult(child.run_id, child.name, architecture, input_shape, out, files,
                        before, after, shrunk.reason, shrunk.layers, semi)
