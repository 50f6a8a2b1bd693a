"""Built-in image datasets through torchvision: CIFAR-10, CIFAR-100 and random fake images.

Registered by ``lth_register_datasets`` in the package's ``__init__``, which holds their params
models; this module (torch) and torchvision are imported only when one of them loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...api import DataError, DataInfo, DataMissing, RandomCropFlip, RawData, derive_seed
from . import CIFARParams, FakeParams

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR_PADDING = 4


def open_torchvision(cls: Any, label: str, root: Path, download: bool) -> tuple[Any, Any]:
    """Train and test parts of a torchvision dataset class, or a DataError saying what to do.

    A failed download leaves no empty ``root`` behind that it created (torchvision makes
    the folder before it downloads)."""
    existed = root.exists()
    try:
        return (cls(str(root), train=True, download=download),
                cls(str(root), train=False, download=download))
    except Exception as exc:  # torchvision raises RuntimeError, URLError or OSError variants
        if not existed and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        # One line, in the spec's words: torchvision's hint names its own argument.
        reason = " ".join(str(exc).split()).replace("download=True", "dataset.download: true")
        reason = reason or type(exc).__name__
        verb = "download failed" if download else "download is off"
        raise DataMissing(f"{label} not found under {root} and {verb}: set dataset.root to "
                        f"a folder that holds it ({reason})") from None


def normalise(images: torch.Tensor, mean: tuple[float, ...],
              std: tuple[float, ...]) -> torch.Tensor:
    """uint8 NCHW images to float32, scaled to [0, 1], then per-channel (x - mean) / std."""
    shape = (1, len(mean), 1, 1)
    x = images.float().div_(255)
    return x.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def crop_flip(mean: tuple[float, ...], std: tuple[float, ...]) -> RandomCropFlip:
    """CIFAR's augmentation for images normalised with ``mean`` and ``std``.

    The padding takes the normalised value of a raw 0 per channel, so padding the
    normalised batch equals zero-padding the raw image first, as open_lth does.
    """
    return RandomCropFlip(padding=CIFAR_PADDING, fill=tuple(-m / s for m, s in zip(mean, std)))


def _cifar(params: CIFARParams, name: str, label: str, num_classes: int,
           mean: tuple[float, ...], std: tuple[float, ...]) -> RawData:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    train, test = open_torchvision(cls, label, params.root, params.download)

    def images(part: Any) -> torch.Tensor:
        # The whole split at once: torchvision keeps it as one uint8 NHWC array.
        hwc = torch.from_numpy(np.ascontiguousarray(part.data))
        return normalise(hwc.permute(0, 3, 1, 2).contiguous(), mean, std)

    def labels(part: Any) -> torch.Tensor:
        y = torch.from_numpy(np.asarray(part.targets, dtype=np.int64))
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise DataError(f"{label} under {params.root}: labels outside 0..{num_classes - 1}")
        return y

    x_train, x_test = images(train), images(test)
    y_train, y_test = labels(train), labels(test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"{label} under {params.root}: images and labels differ in number")
    return RawData(x_train, y_train, x_test, y_test,
                   DataInfo(name, tuple(x_train.shape[1:]), num_classes),
                   augment=crop_flip(mean, std) if params.augment else None)


def load_cifar10(params: CIFARParams, seed: int) -> RawData:
    """CIFAR-10 (50,000 + 10,000 images), normalised with its own per-channel statistics."""
    return _cifar(params, "cifar10", "CIFAR-10", 10, CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(params: CIFARParams, seed: int) -> RawData:
    """CIFAR-100 (fine labels), normalised with its own per-channel statistics."""
    return _cifar(params, "cifar100", "CIFAR-100", 100, CIFAR100_MEAN, CIFAR100_STD)


def fake_images(size: int, shape: tuple[int, int, int], num_classes: int,
                offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly ``torchvision.datasets.FakeData(size, shape, num_classes, random_offset=offset)``.

    As uint8 NCHW images and int64 labels. FakeData draws item ``i`` after
    ``torch.manual_seed(i + offset)``, which also reseeds every CUDA generator, and
    returns a PIL image; the same draws from a private generator leave the global
    random state alone and skip PIL.
    """
    images = torch.empty(size, *shape, dtype=torch.uint8)
    labels = torch.empty(size, dtype=torch.int64)
    generator = torch.Generator()
    for index in range(size):
        generator.manual_seed(index + offset)
        pixels = torch.randn(*shape, generator=generator)
        labels[index] = torch.randint(0, num_classes, (1,), generator=generator)[0]
        # FakeData's ToPILImage conversion, cast for cast (out-of-range values included).
        hwc = (pixels.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        images[index] = torch.from_numpy(hwc).permute(2, 0, 1)
    return images, labels


def load_fake(params: FakeParams, seed: int) -> RawData:
    """Random images and labels (nothing to learn): for smoke tests and benchmarks."""
    shape = params.image_shape
    parts = {split: fake_images(size, shape, params.num_classes, derive_seed(seed, "fake", split))
             for split, size in (("train", params.train_size), ("test", params.test_size))}
    scaled = parts["train"][0].float().div_(255)
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
    (x_train, y_train), (x_test, y_test) = ((normalise(x, mean, std), y) for x, y in parts.values())
    return RawData(x_train, y_train, x_test, y_test,
                   DataInfo("fake", tuple(shape), params.num_classes, synthetic=True),
                   augment=crop_flip(mean, std) if params.augment else None)
