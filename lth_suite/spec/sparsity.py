"""The ``sparsity`` section of a spec: layer-wise allocation, N:M patterns, dynamic sparse
training. Absent (``null``), an experiment prunes as the ``pruning`` section alone says."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from .base import ComponentSpec, Strict

_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_pattern(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``: at most N kept in every group of M consecutive weights."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"expected a pattern like '2:4', got {text!r}")
    n, m = int(match.group(1)), int(match.group(2))
    if not 1 <= n < m:
        raise ValueError(f"'{text}': expected 1 <= N < M")
    return n, m


class Sparsity(Strict):
    """How sparse networks are found besides (or before) iterative magnitude pruning."""

    allocation: ComponentSpec | None = Field(
        default=None, description="how a level's kept weights are shared among the layers "
        "(an allocation plugin: uniform, erk); default: as pruning.scope decides")
    pattern: str | None = Field(
        default=None, description="N:M structured sparsity ('2:4'): in every group of M "
        "consecutive weights along the input dimension at most N are kept")
    pattern_schedule: list[int] | None = Field(
        default=None, description="weights kept per group of M at levels 1, 2, ...; "
        "default: from M-1 down to N in even steps, then N")
    dynamic: ComponentSpec | None = Field(
        default=None, description="dynamic sparse training of level 0 (a dynamic plugin: "
        "set, rigl) from a random mask at `density`; later levels prune its network")
    density: float | None = Field(
        default=None, gt=0, le=1, description="level 0's density under dynamic sparse training")

    @field_validator("pattern")
    @classmethod
    def _pattern_parses(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        n, m = parse_pattern(pattern)
        return f"{n}:{m}"

    @model_validator(mode="after")
    def _consistent(self) -> Sparsity:
        if self.dynamic is not None and self.density is None:
            raise ValueError("sparsity.dynamic needs sparsity.density (level 0's density)")
        if self.density is not None and self.dynamic is None:
            raise ValueError("sparsity.density applies to dynamic sparse training: "
                             "set sparsity.dynamic too")
        if self.dynamic is not None and self.pattern is not None:
            raise ValueError("sparsity.pattern and sparsity.dynamic cannot be combined")
        if self.pattern_schedule is not None:
            if self.pattern is None:
                raise ValueError("sparsity.pattern_schedule needs sparsity.pattern")
            n, m = parse_pattern(self.pattern)
            steps = self.pattern_schedule
            if not steps or any(not n <= k <= m for k in steps) or steps != sorted(steps,
                                                                                  reverse=True):
                raise ValueError(f"sparsity.pattern_schedule: expected a non-increasing list "
                                 f"of counts between {n} and {m}")
        return self

    def nm(self) -> tuple[int, int] | None:
        """``(N, M)`` of the pattern, or None."""
        return parse_pattern(self.pattern) if self.pattern is not None else None

    def kept_per_group(self, level: int, levels: int) -> int:
        """Weights kept per group of M at a pruned level (``level >= 1``)."""
        n, m = parse_pattern(self.pattern or "")
        if self.pattern_schedule is not None:
            return self.pattern_schedule[min(level, len(self.pattern_schedule)) - 1]
        # Even steps from M toward N over the levels, never keeping more than M-1.
        return max(n, min(m - 1, round(m - (m - n) * level / levels)))

    def components(self) -> list[tuple[str, str, ComponentSpec]]:
        """The section's plugin components as (field path, registry kind, component)."""
        found = []
        if self.allocation is not None:
            found.append(("sparsity.allocation", "allocation", self.allocation))
        if self.dynamic is not None:
            found.append(("sparsity.dynamic", "dynamic", self.dynamic))
        return found


def raw_components(data: Any) -> list[tuple[str, str, Any]]:
    """(field path, kind, raw value) of the components written in an unvalidated section."""
    if not isinstance(data, dict):
        return []
    return [(f"sparsity.{key}", kind, data[key]) for key, kind in
            (("allocation", "allocation"), ("dynamic", "dynamic")) if data.get(key) is not None]
