"""Training lengths: ``Duration``, in iterations or epochs."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema


class Duration:
    """A training length in iterations (``"50000it"``) or epochs (``"40ep"``).

    A bare integer means iterations. Epochs become iterations once the size of the
    training split and the batch are known (``to_iterations``).
    """

    _PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(it|ep)\s*$")

    def __init__(self, amount: float, unit: Literal["it", "ep"]):
        if amount > 2**62:  # iteration counters are int64 in torch and MLflow
            raise ValueError("a duration must be at most 2^62 iterations or epochs")
        if amount < 0 or not math.isfinite(amount):
            raise ValueError("a duration must be a finite number >= 0")
        if unit == "it" and amount != int(amount):
            raise ValueError("iterations must be a whole number")
        self.amount, self.unit = amount, unit

    @classmethod
    def parse(cls, value: Any) -> Duration:
        """Parse ``"500it"``, ``"2ep"``, ``"0.5ep"`` or an int (iterations)."""
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool):
            raise ValueError("expected a duration like '500it' or '2ep'")
        if isinstance(value, int):
            return cls(value, "it")
        if isinstance(value, str):
            match = cls._PATTERN.match(value)
            if match:
                return cls(float(match.group(1)), match.group(2))  # type: ignore[arg-type]
        raise ValueError(f"expected a duration like '500it' or '2ep', got {value!r}")

    def to_iterations(self, iterations_per_epoch: int) -> int:
        """This duration in iterations, given the length of an epoch."""
        if self.unit == "it":
            return int(self.amount)
        return int(round(self.amount * iterations_per_epoch))

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}"

    def __repr__(self) -> str:
        return f"Duration({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler):
        return {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?(it|ep)$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": "iterations ('50000it' or an int) or epochs ('40ep')",
        }
