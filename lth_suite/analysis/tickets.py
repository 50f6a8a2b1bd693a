"""A finished ticket read back from the store, ready to measure or export: its masked
network (``export.rebuild``: weights-only loading), how to build the architecture again,
and real test examples to feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import LthError, SpecError, TrackingError
from ..lottery.experiment import load_dataset
from ..pruning.masks import Mask
from ..tracking.names import SPEC_ARTIFACT
from .export import rebuild
from .format_export import Architecture

if TYPE_CHECKING:
    from ..plugins.manager import Plugins
    from ..tracking import RunRecord, StoreReader


@dataclass
class StoredTicket:
    """One child run's trained network (pruned weights zero), mask and test examples."""

    run: RunRecord
    model: nn.Module
    mask: Mask
    architecture: Architecture
    inputs: torch.Tensor
    inputs_note: str  # where the examples come from


def load_ticket(reader: StoreReader, child: RunRecord, plugins: Plugins,
                examples: int) -> StoredTicket:
    """Rebuild a child run's ticket and take ``examples`` test examples of its dataset."""
    import yaml

    from ..spec.loading import build_spec

    model, mask, name, input_shape = rebuild(reader, child, plugins)
    text = reader.artifact_bytes(child.parent_id, SPEC_ARTIFACT)
    if text is None:
        raise TrackingError(f"parent run {child.parent_id} has no {SPEC_ARTIFACT} artifact")
    try:
        spec = build_spec(yaml.safe_load(text.decode("utf-8")) or {}, plugins.registry,
                          f"{SPEC_ARTIFACT} of run {child.parent_id}")
    except SpecError as exc:
        raise LthError("; ".join(exc.lines())) from None
    with torch.inference_mode():
        classes = int(model(torch.zeros(1, *input_shape)).shape[-1])
    architecture = Architecture(name, dict(spec.model.params), spec.dataset.name,
                                tuple(input_shape), classes)
    inputs, note = _examples(plugins, spec, input_shape, examples)
    return StoredTicket(child, model, mask, architecture, inputs, note)


def _examples(plugins: Plugins, spec, input_shape: tuple[int, ...],
              count: int) -> tuple[torch.Tensor, str]:
    """Test examples of the spec's dataset; random normal ones where it cannot load here."""
    try:
        raw = load_dataset(spec, plugins)[1]
        x_test = torch.as_tensor(raw.x_test[:count], dtype=torch.float32)
        if tuple(x_test.shape[1:]) == tuple(input_shape) and len(x_test):
            return x_test, f"{len(x_test)} test examples of {spec.dataset.name}"
        reason = f"its examples have shape {tuple(x_test.shape[1:])}"
    except (LthError, AttributeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    generator = torch.Generator().manual_seed(spec.experiment.seed)
    return (torch.randn(count, *input_shape, generator=generator),
            f"random normal inputs (dataset {spec.dataset.name} not usable here: {reason})")
