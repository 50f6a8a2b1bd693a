"""The training recipe's plugin components: the optimizer and the learning-rate decay.

Both are plugin kinds (``lth_register_optimizers``, ``lth_register_schedules``). An
optimizer without params is written, and hashed, as its bare name, so specs written
before optimizers were plugins keep their canonical form and hash.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_serializer

from .base import ComponentSpec


class OptimizerSpec(ComponentSpec):
    """``training.optimizer``: a registered optimizer, by name or with its params."""

    @model_serializer(mode="plain")
    def _to_flat(self) -> Any:
        return {"name": self.name, **self.params} if self.params else self.name


def without_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``data`` less the fields still at their defaults: a field added to a section
    after specs were written leaves their canonical form, and hash, as it was."""
    return {k: v for k, v in data.items() if k not in defaults or v != defaults[k]}
