"""Datasets: digits offline, validation splits, npz files, raw MNIST IDX folders, tiny
CIFAR folders in torchvision's format, fake images and on-device augmentation."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lth_suite.builtin.datasets import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
)
from lth_suite.builtin.datasets.vision import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    crop_flip,
    fake_images,
)
from lth_suite.errors import DataError
from lth_suite.lottery.experiment import prepare
from lth_suite.pruning.masks import Mask
from lth_suite.seeding import derive_seed
from lth_suite.spec.loading import build_spec
from lth_suite.spec.sections import Training
from lth_suite.training.config import TrainConfig
from lth_suite.training.data import DataInfo, DatasetParams, RandomCropFlip, RawData, Splits, split_validation
from lth_suite.training.single import train

CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                     reason="needs a CUDA device"))


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


def test_every_builtin_dataset_is_registered(registry):
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "fake",
            "npz"} <= set(registry.names("dataset"))


# --- Fashion-MNIST --------------------------------------------------------------------------

def test_fashion_mnist_reads_torchvision_raw_layout(registry, tmp_path):
    arrays = write_mnist(tmp_path / "FashionMNIST" / "raw", gz=False)
    raw, params = load(registry, "fashion_mnist", root=str(tmp_path), download=False,
                       validation=2)
    assert raw.info == DataInfo("fashion_mnist", (1, 28, 28), 10) and raw.augment is None
    assert raw.y_train.tolist() == arrays["y_train"].tolist()
    expected = ((torch.from_numpy(arrays["x_train"]).float() / 255 - FASHION_MNIST_MEAN)
                / FASHION_MNIST_STD)
    assert torch.allclose(raw.x_train[:, 0], expected, atol=1e-6)
    assert split_validation(raw, params).sizes() == {"train": 4, "validation": 2, "test": 4}


def test_fashion_mnist_uses_torchvision_arrays_after_a_download(registry, tmp_path, monkeypatch):
    """An empty root and download on: torchvision fetches, and its .data/.targets are used."""
    from torchvision.datasets import FashionMNIST

    written = {}

    def fake_download(self):
        written.update(write_mnist(Path(self.raw_folder), gz=False))

    monkeypatch.setattr(FashionMNIST, "download", fake_download)
    raw, _ = load(registry, "fashion_mnist", root=str(tmp_path / "fresh"), download=True)
    assert raw.y_test.tolist() == written["y_test"].tolist()
    expected = ((torch.from_numpy(written["x_test"]).float() / 255 - FASHION_MNIST_MEAN)
                / FASHION_MNIST_STD)
    assert torch.allclose(raw.x_test[:, 0], expected, atol=1e-6)


# --- CIFAR in torchvision's on-disk format --------------------------------------------------

CIFAR = {  # name: (folder, train files, label key, meta file, meta key, classes, mean, std)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels",
                "batches.meta", "label_names", 10, CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("cifar-100-python", ["train"], "fine_labels", "meta", "fine_label_names", 100,
                 CIFAR100_MEAN, CIFAR100_STD),
}


def write_cifar(root: Path, name: str, per_file: int = 3, n_test: int = 4) -> dict:
    """A tiny CIFAR folder as torchvision reads it: pickled dicts of flat CHW uint8 rows."""
    folder, train_files, label_key, meta_file, meta_key, classes, _, _ = CIFAR[name]
    rng = np.random.default_rng(7)
    base = root / folder
    base.mkdir(parents=True)
    written = {"x_train": [], "y_train": []}

    def dump(path: Path, n: int) -> tuple[np.ndarray, list[int]]:
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        # The real files are Python 2 pickles, whose str keys torchvision reads as str.
        entry = {"data": data, label_key: labels}
        if name == "cifar100":
            entry["coarse_labels"] = [label // 5 for label in labels]
        path.write_bytes(pickle.dumps(entry))
        return data, labels

    for file in train_files:
        data, labels = dump(base / file, per_file)
        written["x_train"].append(data)
        written["y_train"] += labels
    written["x_train"] = np.concatenate(written["x_train"])
    written["x_test"], written["y_test"] = dump(base / ("test_batch" if name == "cifar10"
                                                        else "test"), n_test)
    (base / meta_file).write_bytes(pickle.dumps({meta_key: [f"c{i}" for i in range(classes)]}))
    return written


@pytest.fixture
def skip_md5(monkeypatch):
    """Our tiny files cannot match CIFAR's MD5 sums: check that they exist, nothing more."""
    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity",
                        lambda path, md5=None: os.path.isfile(path))


@pytest.fixture
def offline(monkeypatch):
    """No network, whatever the machine: every URL fails at once, as it does here."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loads_through_torchvision(registry, tmp_path, skip_md5, name):
    written = write_cifar(tmp_path, name)
    classes, mean, std = CIFAR[name][5:]
    n_train = len(written["y_train"])
    raw, params = load(registry, name, root=str(tmp_path), download=False, validation=2)
    assert raw.info == DataInfo(name, (3, 32, 32), classes)
    assert raw.x_train.shape == (n_train, 3, 32, 32) and raw.x_test.shape == (4, 3, 32, 32)
    assert raw.x_train.dtype == torch.float32 and raw.x_train.is_contiguous()
    assert raw.y_train.dtype == torch.int64
    assert raw.y_train.tolist() == written["y_train"]
    assert raw.y_test.tolist() == written["y_test"]
    # Rows are CHW planes; each channel normalised with this dataset's own statistics.
    for x, key in ((raw.x_train, "x_train"), (raw.x_test, "x_test")):
        pixels = torch.from_numpy(written[key]).reshape(-1, 3, 32, 32).float() / 255
        expected = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        assert torch.allclose(x, expected, atol=1e-5)
    assert raw.augment == crop_flip(mean, std)
    splits = split_validation(raw, params)
    assert splits.sizes() == {"train": n_train - 2, "validation": 2, "test": 4}
    assert splits.augment is raw.augment and splits.to(torch.device("cpu")).augment is raw.augment
    plain, _ = load(registry, name, root=str(tmp_path), download=False, augment=False)
    assert plain.augment is None and torch.equal(plain.x_train, raw.x_train)


def test_cifar_statistics_are_cifars_own():
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465) and CIFAR10_STD == (0.2470, 0.2435, 0.2616)
    assert CIFAR100_MEAN == (0.5071, 0.4865, 0.4409)
    assert CIFAR100_STD == (0.2673, 0.2564, 0.2762)


@pytest.mark.parametrize("name, label", [("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"),
                                         ("fashion_mnist", "Fashion-MNIST"), ("mnist", "MNIST")])
def test_missing_data_without_download_is_a_clear_error(registry, tmp_path, name, label):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        load(registry, name, root=str(empty), download=False)
    message = str(err.value)
    assert message.startswith(f"{label} not found under {empty} and download is off: set "
                              "dataset.root to a folder that holds it (")
    assert "\n" not in message


@pytest.mark.parametrize("name, label", [("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"),
                                         ("fashion_mnist", "Fashion-MNIST")])
def test_download_without_internet_fails_fast_and_clearly(registry, tmp_path, offline, name,
                                                          label):
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        load(registry, name, root=str(tmp_path / "data"), download=True)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert message.startswith(f"{label} not found under {tmp_path / 'data'} and download "
                              "failed: set dataset.root to a folder that holds it (")
    assert "Name or service not known" in message and "\n" not in message


def test_cifar_files_that_fail_the_md5_check_are_not_loaded(registry, tmp_path):
    write_cifar(tmp_path, "cifar10")
    with pytest.raises(DataError, match=r"CIFAR-10 not found .* \(Dataset not found or corrupt"):
        load(registry, "cifar10", root=str(tmp_path), download=False)


# --- augmentation ---------------------------------------------------------------------------

def pattern(n: int = 64, channels: int = 3, size: int = 32) -> torch.Tensor:
    """Raw uint8-valued images in 1..255 (never 0) whose every pixel is distinguishable."""
    values = torch.arange(n * channels * size * size) % 255 + 1
    return values.reshape(n, channels, size, size).float()


def window_of(out: torch.Tensor, padded: torch.Tensor, pad: int) -> tuple[int, int, bool]:
    """The (top, left, flipped) window of ``padded`` that ``out`` is, or an AssertionError."""
    height, width = out.shape[-2:]
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top: top + height, left: left + width]
            for flipped in (False, True):
                if torch.equal(out, crop.flip(-1) if flipped else crop):
                    return top, left, flipped
    raise AssertionError("not a crop of the padded image")


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_crop_flip_is_a_crop_of_the_zero_padded_raw_image(device):
    """Padding the normalised batch with -mean/std is zero-padding the raw image (open_lth)."""
    raw = pattern()
    mean, std = CIFAR10_MEAN, CIFAR10_STD
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    x = ((raw / 255 - m) / s).to(device)
    generator = torch.Generator(device=device).manual_seed(3)
    out = crop_flip(mean, std)(x, generator)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    back = ((out.cpu() * s + m) * 255).round()
    padded = torch.nn.functional.pad(raw, (4, 4, 4, 4))
    windows = [window_of(back[i], padded[i], 4) for i in range(len(raw))]
    assert {flipped for _, _, flipped in windows} == {False, True}
    assert len({(top, left) for top, left, _ in windows}) > 10


def test_crop_flip_draws_every_offset_and_flips_half_the_time():
    x = torch.zeros(4000, 1, 4, 4)
    x[:, :, 0, 0] = 1  # the marker lands at (top, left) moved by the offset, or mirrored
    out = RandomCropFlip(padding=2, fill=(0.0,))(x, torch.Generator().manual_seed(0))
    visible = out.flatten(1).sum(1) == 1
    rows = out[visible, 0].sum(2).argmax(1)
    assert set(rows.tolist()) == {0, 1, 2}  # offsets 0..2 keep the marker inside
    assert 0.1 < visible.float().mean() < 0.9
    columns = out[visible, 0].sum(1).argmax(1)
    assert set(columns.tolist()) == {0, 1, 2, 3}  # 0..2 unflipped, 1..3 flipped: both sides


def test_crop_flip_is_seeded_by_its_generator():
    x = pattern(32)
    augment = RandomCropFlip(padding=4, fill=(-1.0, -2.0, -3.0))
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5))
    c = augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, pattern(32))  # the batch itself is untouched
    for channel, value in enumerate((-1.0, -2.0, -3.0)):  # the padding has each channel's fill
        assert set(a[:, channel].unique().tolist()) - set(x[:, channel].unique().tolist()) \
            <= {value}
    with pytest.raises(ValueError, match="fill"):
        RandomCropFlip(fill=(0.0, 0.0))(x, torch.Generator())


@pytest.mark.parametrize("device", [CUDA])
def test_crop_flip_runs_on_the_batchs_device(device):
    x = pattern(8).to(device)
    out = crop_flip(CIFAR10_MEAN, CIFAR10_STD)(x, torch.Generator(device=device).manual_seed(0))
    assert out.device == x.device
    with pytest.raises(RuntimeError):  # a CPU generator cannot drive a CUDA batch
        crop_flip(CIFAR10_MEAN, CIFAR10_STD)(x, torch.Generator().manual_seed(0))


class Spy:
    """An augmentation that records what it was given."""

    def __init__(self, augment):
        self.augment, self.calls = augment, []

    def __call__(self, x, generator):
        self.calls.append((len(x), x.device, generator.initial_seed()))
        return self.augment(x, generator)


def augmented_splits(augment) -> Splits:
    generator = torch.Generator().manual_seed(0)

    def part(n):
        x = torch.randn(n, 3, 8, 8, generator=generator)
        return x, (x[:, :, 2:6, 2:6].mean((1, 2, 3)) > 0).long()

    return Splits(*part(64), *part(16), *part(16), DataInfo("aug", (3, 8, 8), 2), augment)


def test_training_with_augmentation_is_reproducible_and_resumable(registry):
    info = DataInfo("aug", (3, 8, 8), 2)
    config = TrainConfig.resolve(Training(optimizer="sgd", lr=0.1, momentum=0.0, batch_size=16,
                                          duration="12it", eval_every=4), 64)

    def run(augment, start=0, state=None, capture=frozenset()):
        torch.manual_seed(0)
        model = registry.build("architecture", "mlp", {"hidden": [16]}, info)
        if state is not None:
            model.load_state_dict(state)
        return train(model, Mask.dense(model), augmented_splits(augment), config, data_seed=4,
                     start_iteration=start, capture_at=capture)

    spy = Spy(RandomCropFlip(padding=2, fill=(0.0, 0.0, 0.0)))
    first = run(spy, capture=frozenset({8}))
    # Training batches only, one call per iteration, each seeded for its own iteration.
    assert spy.calls == [(16, torch.device("cpu"), derive_seed(4, "augment", it))
                         for it in range(12)]
    second = run(RandomCropFlip(padding=2, fill=(0.0, 0.0, 0.0)))
    assert all(torch.equal(first.state[k], second.state[k]) for k in first.state)
    assert first.history == second.history
    plain = run(None)
    assert not all(torch.equal(first.state[k], plain.state[k]) for k in first.state)
    # Plain SGD has no optimizer state: resuming at iteration 8 replays the same batches.
    resumed = run(RandomCropFlip(padding=2, fill=(0.0, 0.0, 0.0)), start=8,
                  state=first.captured[8])
    assert all(torch.allclose(first.state[k], resumed.state[k], atol=1e-6) for k in first.state)


def test_prepare_carries_the_augmentation_to_the_device(tiny, plugins):
    tiny["dataset"] = {"name": "fake", "image_shape": [3, 8, 8], "train_size": 80,
                       "test_size": 16, "augment": True, "validation": 16}
    tiny["training"]["batch_size"] = 16
    experiment = prepare(build_spec(tiny, plugins.registry), plugins)
    assert isinstance(experiment.data.augment, RandomCropFlip)
    assert experiment.data.info.synthetic
    assert experiment.data.sizes() == {"train": 64, "validation": 16, "test": 16}


# --- fake -----------------------------------------------------------------------------------

def test_fake_shapes_classes_and_synthetic_flag(registry):
    raw, params = load(registry, "fake")
    assert raw.info == DataInfo("fake", (3, 32, 32), 10, synthetic=True)
    assert raw.x_train.shape == (512, 3, 32, 32) and raw.x_test.shape == (128, 3, 32, 32)
    assert raw.x_train.dtype == torch.float32 and raw.y_train.dtype == torch.int64
    assert set(raw.y_train.tolist()) == set(range(10))
    assert raw.augment is None
    per_channel = raw.x_train.mean((0, 2, 3)), raw.x_train.std((0, 2, 3))
    assert torch.allclose(per_channel[0], torch.zeros(3), atol=1e-4)
    assert torch.allclose(per_channel[1], torch.ones(3), atol=1e-3)
    assert split_validation(raw, params).sizes() == {"train": 461, "validation": 51, "test": 128}
    small, _ = load(registry, "fake", image_shape=[1, 28, 28], num_classes=3, train_size=20,
                    test_size=5, augment=True)
    assert small.info == DataInfo("fake", (1, 28, 28), 3, synthetic=True)
    assert small.x_train.shape == (20, 1, 28, 28) and small.x_test.shape == (5, 1, 28, 28)
    assert int(small.y_train.max()) < 3 and isinstance(small.augment, RandomCropFlip)
    with pytest.raises(ValidationError):
        load(registry, "fake", image_shape=[3, 32])


def test_fake_is_seeded_by_the_experiment_seed(registry):
    component = registry.get("dataset", "fake")
    params = component.params_model.model_validate({"train_size": 16, "test_size": 4})
    a, b, c = (component.factory(params, seed) for seed in (0, 0, 1))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_train[:4], a.x_test)


def test_fake_images_are_torchvisions_fakedata():
    from torchvision.datasets import FakeData

    rng_before = torch.get_rng_state()
    images, labels = fake_images(6, (3, 32, 32), 10, offset=1234)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global stream is left alone
    reference = FakeData(6, (3, 32, 32), 10, random_offset=1234)
    for index in range(6):
        image, label = reference[index]
        assert torch.equal(images[index], torch.from_numpy(np.asarray(image)).permute(2, 0, 1))
        assert labels[index].item() == label
