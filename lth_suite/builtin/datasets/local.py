"""Datasets read without torchvision: digits (embedded), MNIST-style IDX files and npz.

Registered by ``lth_register_datasets`` in the package's ``__init__``, which holds their params
models; this module (torch) is imported when a spec loads one of them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ...seeding import derive_seed
from ...training.data import DataInfo, RawData
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
)
from .vision import open_torchvision


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


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    # Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    dims = raw[3]
    if len(raw) < 4 + 4 * dims:
        raise DataError(f"{path}: truncated IDX file")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated IDX file")
    return data.reshape(shape)


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
    else:
        from torchvision import datasets

        train, test = open_torchvision(getattr(datasets, layout), label, root, download)
        arrays = {"x_train": train.data.numpy(), "y_train": train.targets.numpy(),
                  "x_test": test.data.numpy(), "y_test": test.targets.numpy()}

    def images(key: str) -> torch.Tensor:
        x = torch.from_numpy(arrays[key].astype(np.float32) / 255.0).unsqueeze(1)
        return (x - mean) / std

    def labels(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key].astype(np.int64))

    x_train, x_test = images("x_train"), images("x_test")
    y_train, y_test = labels("y_train"), labels("y_test")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"{label} under {root}: images and labels differ in number")
    return RawData(x_train, y_train, x_test, y_test,
                   DataInfo(name, tuple(x_train.shape[1:]), 10))


def load_mnist(params: MNISTParams, seed: int) -> RawData:
    """MNIST, normalised with its own mean and standard deviation."""
    return _idx_dataset(params.root, params.download, "mnist", "MNIST", MNIST_MEAN, MNIST_STD)


def load_fashion_mnist(params: FashionMNISTParams, seed: int) -> RawData:
    """Fashion-MNIST, normalised with its own mean and standard deviation."""
    return _idx_dataset(params.root, params.download, "fashion_mnist", "Fashion-MNIST",
                        FASHION_MNIST_MEAN, FASHION_MNIST_STD)


def load_npz(params: NpzParams, seed: int) -> RawData:
    """Arrays from a user's .npz; uint8 images are scaled to [0, 1]."""
    if not params.path.is_file():
        raise DataError(f"dataset.path: {params.path} does not exist")
    with np.load(params.path) as arrays:
        missing = {"x", "y"} - set(arrays.files)
        if missing:
            raise DataError(f"{params.path}: missing array(s) {', '.join(sorted(missing))}")
        if ("x_test" in arrays.files) != ("y_test" in arrays.files):
            raise DataError(f"{params.path}: x_test and y_test come together; one is missing")
        loaded = {k: arrays[k] for k in arrays.files}
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if xs in loaded and len(loaded[xs]) != len(loaded[ys]):
            raise DataError(f"{params.path}: {xs} has {len(loaded[xs])} examples, "
                            f"{ys} {len(loaded[ys])}")

    def features(a: np.ndarray) -> torch.Tensor:
        scale = 255.0 if a.dtype == np.uint8 else 1.0
        return torch.from_numpy(a.astype(np.float32) / scale)

    x, y = features(loaded["x"]), torch.from_numpy(loaded["y"].astype(np.int64))
    if "x_test" in loaded and "y_test" in loaded:
        x_test, y_test = features(loaded["x_test"]), torch.from_numpy(loaded["y_test"].astype(np.int64))
        x_train, y_train = x, y
    else:
        x_train, y_train, x_test, y_test = carve_test(x, y, params.test, params.split_seed)
    classes = int(max(y_train.max(), y_test.max())) + 1
    return RawData(x_train, y_train, x_test, y_test,
                   DataInfo(params.path.stem, tuple(x.shape[1:]), classes))
