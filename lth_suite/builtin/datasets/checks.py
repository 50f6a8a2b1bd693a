"""Checks on a user's arrays before anything trains on them.

Each check raises a one-line ``DataError`` that starts with ``where`` (the file, and the
array inside it), so that NaN features are not reported later as a diverged training,
and one-hot or out-of-range labels are not silently trained on.
"""

from __future__ import annotations

import math

import numpy as np

from ...api import DataError

NUMBERS = "biuf"  # bool, signed and unsigned integers, floats
KINDS = {"O": "Python objects", "U": "strings", "S": "byte strings", "c": "complex numbers",
         "V": "records or raw bytes", "M": "dates", "m": "time spans"}


def _holds(array: np.ndarray) -> str:
    return f"{KINDS.get(array.dtype.kind, 'values')} (dtype {array.dtype})"


def check_count(where: str, count: int, least: int) -> None:
    """Refuse fewer than ``least`` examples."""
    if count < least:
        found = "no examples" if count == 0 else f"{count} example{'s' * (count != 1)}"
        raise DataError(f"{where}: holds {found}; at least {least} "
                        f"{'is' if least == 1 else 'are'} needed")


def features(where: str, array: np.ndarray, least: int) -> np.ndarray:
    """The examples as float32 (uint8 scaled to [0, 1]), refusing what cannot be trained on."""
    if array.dtype.kind not in NUMBERS:
        raise DataError(f"{where}: holds {_holds(array)}; features must be real numbers")
    if array.ndim < 2:
        hint = ": for one feature per example use x[:, None]" if array.ndim == 1 else ""
        raise DataError(f"{where}: has shape {array.shape}; features need shape "
                        f"(examples, ...){hint}")
    check_count(where, len(array), least)
    if math.prod(array.shape[1:]) == 0:
        raise DataError(f"{where}: every example is empty (shape {array.shape})")
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, value by value
        converted = array.astype(np.float32) / np.float32(scale)
    if not np.isfinite(converted).all():
        bad = ~np.isfinite(converted.reshape(len(converted), -1))
        first = int(np.argmax(bad.any(axis=1)))
        what = "NaN or infinite value(s)" if not np.isfinite(array).all() \
            else "value(s) beyond float32's range (3.4e38)"
        raise DataError(f"{where}: holds {int(bad.sum())} {what}, the first in example {first}")
    return converted


def labels(where: str, array: np.ndarray) -> np.ndarray:
    """One whole, non-negative class index per example; a column (N, 1) is taken as (N,)."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        hint = ": one-hot labels? save y.argmax(1)" if array.ndim == 2 else ""
        raise DataError(f"{where}: has shape {array.shape}; labels are one class index per "
                        f"example, shape (examples,){hint}")
    if array.dtype.kind not in NUMBERS:
        raise DataError(f"{where}: holds {_holds(array)}; labels must be class indices 0..K-1")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{where}: holds NaN or infinite labels")
        fractional = array[array != np.floor(array)]
        if fractional.size:
            raise DataError(f"{where}: holds fractional labels such as {fractional[0]}; labels "
                            "are whole class indices 0..K-1")
    if array.size and array.min() < 0:
        raise DataError(f"{where}: holds negative labels such as {array.min()}; labels are "
                        "class indices 0..K-1")
    return array


def count_classes(train: tuple[str, np.ndarray], others: list[tuple[str, np.ndarray]],
                  known: int | None = None) -> int:
    """The number of classes, ``known`` or numbered by all the labels; labels checked.

    Inferred classes run from 0 to the largest label, which must stay below the number of
    labelled examples: a label like 10**9 is an id, not a class index, and would build an
    output layer that wide. Training needs two classes or more.
    """
    every = [train, *others]
    if known is not None:
        for where, values in every:
            if values.size and int(values.max()) >= known:
                raise DataError(f"{where}: holds label {int(values.max())}, outside the "
                                f"{known} classes 0..{known - 1}")
        return known
    where, top = max(((name, int(values.max())) for name, values in every if values.size),
                     key=lambda pair: pair[1])
    examples = sum(len(values) for _, values in every)
    if top >= examples:
        raise DataError(f"{where}: holds label {top} for {examples} examples in all; labels "
                        "must number the classes 0..K-1")
    if len(np.unique(train[1])) < 2:
        raise DataError(f"{train[0]}: every label is {int(train[1].max())}; classification "
                        "needs two classes or more")
    return top + 1


def same_example_shape(first: tuple[str, np.ndarray], second: tuple[str, np.ndarray]) -> None:
    """Refuse test examples shaped unlike the training ones."""
    (where, a), (other, b) = first, second
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"{other}: examples of shape {b.shape[1:]} but {where} has "
                        f"{a.shape[1:]}")


def same_count(examples: tuple[str, np.ndarray], targets: tuple[str, np.ndarray]) -> None:
    """Refuse features and labels that differ in number."""
    (where, x), (other, y) = examples, targets
    if len(x) != len(y):
        raise DataError(f"{where}: holds {len(x)} examples but {other} holds {len(y)}; "
                        "examples and labels differ in number")
