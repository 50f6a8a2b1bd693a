"""Datasets read without torchvision: digits (embedded), MNIST-style IDX files and npz.

Registered by ``lth_register_datasets`` in the package's ``__init__``, which holds their params
models; this module (torch) is imported when a spec loads one of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...api import DataError, DataInfo, RawData, derive_seed
from . import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    DigitsParams,
    FashionMNISTParams,
    MNISTParams,
    NpzParams,
    checks,
)
from .files import read_idx, read_npz
from .vision import open_torchvision

__all__ = ["carve_test", "standardize", "load_digits", "read_idx", "load_mnist",
           "load_fashion_mnist", "load_npz"]


def carve_test(x: torch.Tensor, y: torch.Tensor, fraction: float,
               seed: int) -> tuple[torch.Tensor, ...]:
    """Split (x, y) into train and test parts with a seeded permutation."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(derive_seed(seed, "test")))
    size = max(1, int(round(fraction * len(y))))
    test, train = order[:size], order[size:]
    return x[train], y[train], x[test], y[test]


def standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero mean, unit variance with the training split's statistics."""
    mean, std = x_train.mean(), x_train.std().clamp_min(1e-8)
    return (x_train - mean) / std, (x_test - mean) / std


def load_digits(params: DigitsParams, seed: int) -> RawData:
    """The embedded default: needs no download."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    x_train, y_train, x_test, y_test = carve_test(x, y, params.test, params.split_seed)
    x_train, x_test = standardize(x_train, x_test)
    return RawData(x_train, y_train, x_test, y_test, DataInfo("digits", (1, 8, 8), 10))


def _find_idx(folder: Path, stem: str, layout: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / layout / "raw" / stem,
                      folder / layout / "raw" / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_dataset(root: Path, download: bool, name: str, label: str, mean: float,
                 std: float) -> RawData:
    """An MNIST-like dataset: raw IDX files under root if all four are there, else torchvision."""
    # torchvision's layout is root/<class name>/raw/; a flat folder of the four files works too.
    layout = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
    found = {key: _find_idx(root, stem, layout) for key, stem in MNIST_FILES.items()}
    if all(found.values()):
        arrays = {key: read_idx(path) for key, path in found.items()}  # type: ignore[arg-type]
        where = {key: str(path) for key, path in found.items()}
    else:
        from torchvision import datasets

        train, test = open_torchvision(getattr(datasets, layout), label, root, download)
        arrays = {"x_train": train.data.numpy(), "y_train": train.targets.numpy(),
                  "x_test": test.data.numpy(), "y_test": test.targets.numpy()}
        where = {key: f"{label} under {root}: {key}" for key in arrays}
    named = {key: (where[key], array) for key, array in arrays.items()}
    for key in ("x_train", "x_test"):
        if arrays[key].ndim != 3:
            raise DataError(f"{where[key]}: has shape {arrays[key].shape}, not images "
                            "(examples, height, width)")
    x_train = checks.features(where["x_train"], arrays["x_train"], least=2)
    x_test = checks.features(where["x_test"], arrays["x_test"], least=1)
    checks.same_example_shape(named["x_train"], named["x_test"])
    for xs, ys in (("x_train", "y_train"), ("x_test", "y_test")):
        named[ys] = (where[ys], checks.labels(where[ys], arrays[ys]))
        checks.same_count(named[xs], named[ys])
    checks.count_classes(named["y_train"], [named["y_test"]], known=10)

    def images(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(x).unsqueeze(1) - mean) / std

    def classes(key: str) -> torch.Tensor:
        return torch.from_numpy(named[key][1].astype(np.int64))

    return RawData(images(x_train), classes("y_train"), images(x_test), classes("y_test"),
                   DataInfo(name, (1, *x_train.shape[1:]), 10))


def load_mnist(params: MNISTParams, seed: int) -> RawData:
    """MNIST, normalised with its own mean and standard deviation."""
    return _idx_dataset(params.root, params.download, "mnist", "MNIST", MNIST_MEAN, MNIST_STD)


def load_fashion_mnist(params: FashionMNISTParams, seed: int) -> RawData:
    """Fashion-MNIST, normalised with its own mean and standard deviation."""
    return _idx_dataset(params.root, params.download, "fashion_mnist", "Fashion-MNIST",
                        FASHION_MNIST_MEAN, FASHION_MNIST_STD)


def load_npz(params: NpzParams, seed: int) -> RawData:
    """Arrays from a user's .npz; uint8 images are scaled to [0, 1]. Every array is checked."""
    path = params.path
    arrays = read_npz(path, ("x", "y", "x_test", "y_test"))
    missing = {"x", "y"} - set(arrays)
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(sorted(missing))}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test come together; one is missing")
    named = {key: (f"{path}, array '{key}'", array) for key, array in arrays.items()}
    x = checks.features(named["x"][0], arrays["x"], least=2)
    x_given = checks.features(named["x_test"][0], arrays["x_test"], least=1) \
        if "x_test" in arrays else None
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if xs in arrays:
            named[ys] = (named[ys][0], checks.labels(named[ys][0], arrays[ys]))
            checks.same_count(named[xs], named[ys])
    if x_given is not None:
        checks.same_example_shape(named["x"], named["x_test"])
    classes = checks.count_classes(named["y"], [named["y_test"]] if "y_test" in named else [])

    def targets(key: str) -> torch.Tensor:
        return torch.from_numpy(named[key][1].astype(np.int64))

    if x_given is not None:
        x_train, y_train = torch.from_numpy(x), targets("y")
        x_test, y_test = torch.from_numpy(x_given), targets("y_test")
    else:
        x_train, y_train, x_test, y_test = carve_test(torch.from_numpy(x), targets("y"),
                                                      params.test, params.split_seed)
    return RawData(x_train, y_train, x_test, y_test,
                   DataInfo(path.stem, tuple(x.shape[1:]), classes))
