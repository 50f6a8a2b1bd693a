"""Datasets: digits offline, validation splits, npz files and raw MNIST IDX folders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lth_suite.builtin.datasets import MNIST_FILES, MNIST_MEAN, MNIST_STD
from lth_suite.data import DataInfo, DatasetParams, RawData, split_validation
from lth_suite.errors import DataError


def load(registry, name, **params):
    component = registry.get("dataset", name)
    validated = component.params_model.model_validate(params)
    return component.factory(validated, 0), validated


def raw_ids(n: int = 100) -> RawData:
    """Training examples whose features are their own index, to trace the splits."""
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    return RawData(x, torch.arange(n) % 3, torch.zeros(5, 1), torch.zeros(5, dtype=torch.long),
                   DataInfo("ids", (1,), 3))


# --- digits ---------------------------------------------------------------------------------

def test_digits_loads_offline_with_the_right_shapes(registry):
    raw, params = load(registry, "digits")
    assert raw.info == DataInfo("digits", (1, 8, 8), 10)
    n_test = round(0.2 * 1797)
    assert raw.x_train.shape == (1797 - n_test, 1, 8, 8)
    assert raw.x_test.shape == (n_test, 1, 8, 8)
    assert raw.y_train.dtype == torch.int64 and raw.x_train.dtype == torch.float32
    assert set(raw.y_train.tolist()) == set(range(10)) == set(raw.y_test.tolist())
    assert abs(float(raw.x_train.mean())) < 1e-4 and abs(float(raw.x_train.std()) - 1) < 1e-3
    splits = split_validation(raw, params)
    assert splits.sizes() == {"train": 1438 - 144, "validation": 144, "test": 359}


def test_digits_split_is_seeded(registry):
    a, _ = load(registry, "digits")
    b, _ = load(registry, "digits")
    c, _ = load(registry, "digits", split_seed=1)
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.y_test, c.y_test)


# --- validation split -----------------------------------------------------------------------

def test_validation_fraction_and_count():
    raw = raw_ids(100)
    by_fraction = split_validation(raw, DatasetParams(validation=0.25))
    assert by_fraction.sizes() == {"train": 75, "validation": 25, "test": 5}
    by_count = split_validation(raw, DatasetParams(validation=10))
    assert by_count.sizes()["validation"] == 10 and by_count.sizes()["train"] == 90
    for splits in (by_fraction, by_count):
        train = set(splits.x_train.reshape(-1).tolist())
        val = set(splits.x_val.reshape(-1).tolist())
        assert not train & val and train | val == set(range(100))
        # Labels travel with their examples.
        assert torch.equal(splits.y_train, splits.x_train.reshape(-1).long() % 3)
        assert torch.equal(splits.y_val, splits.x_val.reshape(-1).long() % 3)


def test_validation_split_seeded_and_subset_from_training_part():
    raw = raw_ids(100)
    a = split_validation(raw, DatasetParams(validation=20, subset=30))
    b = split_validation(raw, DatasetParams(validation=20, subset=30))
    c = split_validation(raw, DatasetParams(validation=20, split_seed=3))
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_val, c.x_val)
    assert a.sizes() == {"train": 30, "validation": 20, "test": 5}
    full = split_validation(raw, DatasetParams(validation=20))
    assert torch.equal(a.x_train, full.x_train[:30])  # the validation set does not move


@pytest.mark.parametrize("validation", [100, 150, 0.999])
def test_validation_too_large_is_a_data_error(validation):
    with pytest.raises(DataError, match="dataset.validation"):
        split_validation(raw_ids(100), DatasetParams(validation=validation))


def test_validation_count_must_be_whole_and_subset_must_fit():
    with pytest.raises(DataError, match="dataset.validation"):
        split_validation(raw_ids(100), DatasetParams(validation=2.5))
    with pytest.raises(DataError, match="dataset.subset"):
        split_validation(raw_ids(100), DatasetParams(validation=10, subset=91))
    with pytest.raises(ValidationError):
        DatasetParams(validation=0)


def test_digits_validation_too_large(registry):
    raw, params = load(registry, "digits", validation=5000)
    with pytest.raises(DataError, match="dataset.validation"):
        split_validation(raw, params)


# --- npz ------------------------------------------------------------------------------------

def test_npz_with_x_y_only_carves_a_test_split(registry, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 1, 4, 4), dtype=np.uint8)
    y = np.arange(50) % 3
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    raw, params = load(registry, "npz", path=str(tmp_path / "mine.npz"), test=0.2)
    assert raw.info == DataInfo("mine", (1, 4, 4), 3)
    assert len(raw.y_test) == 10 and len(raw.y_train) == 40
    assert raw.x_train.dtype == torch.float32
    assert float(raw.x_train.max()) <= 1.0 and float(raw.x_train.min()) >= 0.0
    # Every example is in exactly one split, scaled by 1/255 and still with its label.
    everything = torch.cat([raw.x_train, raw.x_test]) * 255
    labels = torch.cat([raw.y_train, raw.y_test])
    expected = {(tuple(row), int(label)) for row, label in
                zip(x.reshape(50, -1).astype(np.float32).tolist(), y)}
    found = {(tuple(row), int(label)) for row, label in
             zip(everything.reshape(50, -1).round().tolist(), labels)}
    assert found == expected
    assert split_validation(raw, params).sizes() == {"train": 36, "validation": 4, "test": 10}


def test_npz_with_explicit_test_split(registry, tmp_path):
    x = np.linspace(-1, 1, 30 * 6, dtype=np.float64).reshape(30, 6)
    x_test = np.full((7, 6), 0.5)
    np.savez(tmp_path / "given.npz", x=x, y=np.arange(30) % 4, x_test=x_test,
             y_test=np.arange(7) % 5)
    raw, _ = load(registry, "npz", path=str(tmp_path / "given.npz"))
    assert torch.allclose(raw.x_train, torch.from_numpy(x).float())  # floats are not scaled
    assert torch.allclose(raw.x_test, torch.full((7, 6), 0.5))
    assert raw.y_test.tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert raw.info.input_shape == (6,) and raw.info.num_classes == 5


def test_npz_errors(registry, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(registry, "npz", path=str(tmp_path / "absent.npz"))
    np.savez(tmp_path / "no_y.npz", x=np.zeros((4, 2)))
    with pytest.raises(DataError, match="missing array"):
        load(registry, "npz", path=str(tmp_path / "no_y.npz"))
    np.savez(tmp_path / "half.npz", x=np.zeros((4, 2)), y=np.zeros(4), x_test=np.zeros((2, 2)))
    with pytest.raises(DataError, match="y_test"):
        load(registry, "npz", path=str(tmp_path / "half.npz"))
    np.savez(tmp_path / "uneven.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="examples"):
        load(registry, "npz", path=str(tmp_path / "uneven.npz"))


# --- MNIST from raw IDX files ---------------------------------------------------------------

def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28)),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28)),
        "y_test": (np.arange(n_test) * 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in MNIST_FILES.items():
        payload = idx_images(arrays[key]) if key.startswith("x") else idx_labels(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)
    return arrays


@pytest.mark.parametrize("layout", ["flat_gz", "torchvision_raw"])
def test_mnist_reads_raw_idx_files(registry, tmp_path, layout):
    folder = tmp_path / "mnist"
    arrays = write_mnist(folder if layout == "flat_gz" else folder / "MNIST" / "raw",
                         gz=layout == "flat_gz")
    raw, params = load(registry, "mnist", root=str(folder), download=False, validation=2)
    assert raw.info == DataInfo("mnist", (1, 28, 28), 10)
    assert raw.x_train.shape == (6, 1, 28, 28) and raw.x_test.shape == (4, 1, 28, 28)
    assert raw.y_train.tolist() == arrays["y_train"].tolist()
    assert raw.y_test.tolist() == arrays["y_test"].tolist()
    expected = (torch.from_numpy(arrays["x_test"]).float() / 255 - MNIST_MEAN) / MNIST_STD
    assert torch.allclose(raw.x_test[:, 0], expected, atol=1e-6)
    assert split_validation(raw, params).sizes() == {"train": 4, "validation": 2, "test": 4}


def test_mnist_missing_without_download_is_a_clear_error(registry, tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DataError, match=r"MNIST not found under .*nothing and download") as err:
        load(registry, "mnist", root=str(empty), download=False)
    assert "dataset.root" in str(err.value)


def test_mnist_corrupt_idx_is_a_data_error(registry, tmp_path):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    stem = MNIST_FILES["x_train"]
    (folder / f"{stem}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 10))
    with pytest.raises(DataError, match="truncated"):
        load(registry, "mnist", root=str(folder), download=False)
    (folder / f"{stem}.gz").write_bytes(gzip.compress(b"PK\x03\x04 not idx at all"))
    with pytest.raises(DataError, match="not an IDX"):
        load(registry, "mnist", root=str(folder), download=False)


def test_mnist_images_and_labels_must_agree(registry, tmp_path):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    (folder / f"{MNIST_FILES['y_train']}.gz").write_bytes(gzip.compress(idx_labels(np.arange(5))))
    with pytest.raises(DataError, match="differ"):
        load(registry, "mnist", root=str(folder), download=False)
