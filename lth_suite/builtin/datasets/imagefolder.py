"""Image folders (torchvision's ImageFolder layout, ImageNet's): in memory, or streamed.

Streamed training images get the standard ImageNet augmentation (random resized crop,
horizontal flip), evaluation images a resize and a center crop; each example's
augmentation is drawn from its own seed, so batches do not depend on the loader workers.
Small folders are decoded once into tensors (the in-memory path every other dataset takes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...api import DataError, DataInfo, RandomCropFlip, RawData, StreamedData
from . import ImageFolderParams, ImageNetParams
from .image_files import open_image, scan, shown

FLOAT32_BYTES = 4
GIB = 2 ** 30


class ImageFolderSet:
    """One folder of class folders, decoded image by image."""

    def __init__(self, folder: Path, params: ImageFolderParams):
        from torchvision import transforms

        if not folder.is_dir():
            raise DataError(f"dataset.root: no folder {shown(folder)} (expected class folders "
                            "of images, torchvision's ImageFolder layout)")
        self.folder = folder
        self.samples, self.classes = scan(folder)  # no link loops, FIFOs or devices
        size = params.image_size
        resize = params.resize or round(size / params.crop_fraction)  # 0.875: 256 for 224
        mode = transforms.InterpolationMode(params.interpolation)
        normalise = [transforms.ToTensor(), transforms.Normalize(params.mean, params.std)]
        self.evaluation = transforms.Compose(
            [transforms.Resize(resize, interpolation=mode), transforms.CenterCrop(size),
             *normalise])
        self.training = transforms.Compose(
            [transforms.RandomResizedCrop(size, interpolation=mode),
             transforms.RandomHorizontalFlip(), *normalise]
        ) if params.augment else self.evaluation

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int, augment_seed: int | None) -> tuple[torch.Tensor, int]:
        """One normalised image and its label; augmented when ``augment_seed`` is given."""
        path, label = self.samples[index]
        image = open_image(path)  # bounded before decoding; one line naming a bad file
        if augment_seed is None:
            return self.evaluation(image), label
        # torchvision's transforms draw from the global generator: seed it for this example
        # only, and leave the caller's stream (dropout, a workers-free loader) as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(augment_seed)
            return self.training(image), label


def open_folders(params: ImageFolderParams) -> tuple[ImageFolderSet, ImageFolderSet]:
    """The training and test folders, which must hold the same classes."""
    train = ImageFolderSet(params.root / params.train, params)
    test = ImageFolderSet(params.root / params.test, params)
    if train.classes != test.classes:
        missing = sorted(set(train.classes) ^ set(test.classes))
        raise DataError(f"dataset.test: {shown(test.folder)} and {shown(train.folder)} hold "
                        f"different classes ({', '.join(map(shown, missing[:5])) or 'a different order'})")
    return train, test


def decoded_bytes(count: int, params: ImageFolderParams) -> int:
    """Memory that ``count`` decoded float32 images take."""
    return count * 3 * params.image_size ** 2 * FLOAT32_BYTES


def streams(params: ImageFolderParams, count: int) -> bool:
    """Whether the folders are streamed: asked for, or too large for memory."""
    if params.storage != "auto":
        return params.storage == "stream"
    return decoded_bytes(count, params) > params.memory_limit * GIB


def _in_memory(train: ImageFolderSet, test: ImageFolderSet, info: DataInfo,
               params: ImageFolderParams) -> RawData:
    def decode(part: ImageFolderSet) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [part.load(i, None) for i in range(len(part))]
        return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs])

    (x_train, y_train), (x_test, y_test) = decode(train), decode(test)
    # Decoded once at evaluation size: training batches are cropped (padding an eighth of
    # the side) and flipped on the device, as CIFAR's are.
    fill = tuple(-m / s for m, s in zip(params.mean, params.std))
    augment = RandomCropFlip(padding=params.image_size // 8, fill=fill) if params.augment else None
    return RawData(x_train, y_train, x_test, y_test, info, augment=augment)


def load_imagefolder(params: ImageFolderParams, seed: int, name: str = "imagefolder") -> Any:
    """The folders as tensors when they fit in memory (``storage``), else streamed."""
    params = params.resolved()
    train, test = open_folders(params)
    info = DataInfo(name, (3, params.image_size, params.image_size), len(train.classes))
    if streams(params, len(train) + len(test)):
        return StreamedData(train, test, info, params.workers, params.eval_batch_size)
    return _in_memory(train, test, info, params)


def load_imagenet(params: ImageNetParams, seed: int) -> Any:
    """ImageNet's train and val folders, normalised with ImageNet's statistics."""
    return load_imagefolder(params, seed, "imagenet")
