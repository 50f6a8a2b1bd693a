"""Built-in datasets: digits (embedded), MNIST and Fashion-MNIST (torchvision or raw IDX),
npz, CIFAR-10/100, fake images, and image folders (ImageNet) streamed from disk.

This module holds the params models and the hook; the loaders (torch, torchvision) live
in ``local.py``, ``vision.py`` and ``imagefolder.py``, imported when a spec loads one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from ...api import DatasetParams, RegisterFn, hookimpl, lazy
from .. import moved

LOCAL, VISION = "lth_suite.builtin.datasets.local", "lth_suite.builtin.datasets.vision"
FOLDER = "lth_suite.builtin.datasets.imagefolder"
__getattr__ = moved(__name__, {
    **dict.fromkeys(["carve_test", "standardize", "load_digits", "read_idx", "load_mnist",
                     "load_fashion_mnist", "load_npz"], "local"),
    **dict.fromkeys(["load_cifar10", "load_cifar100", "load_fake", "open_torchvision"],
                    "vision")})
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class TorchvisionParams(DatasetParams):
    """A dataset torchvision reads from ``root`` or downloads there."""

    root: Path = Field(default=Path("data"), description="folder holding or receiving the data")
    download: bool = Field(default=True, description="download when not found under root")


class CIFARParams(TorchvisionParams):
    """CIFAR through torchvision (its ``cifar-*-python`` folder under root)."""

    augment: bool = Field(default=True, description="random crop (4-pixel zero padding) and "
                          "horizontal flip of every training batch, on the device")


class FakeParams(DatasetParams):
    """Random images from torchvision's FakeData, seeded by the experiment seed."""

    image_shape: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        default=(3, 32, 32), description="channels, height, width (default: CIFAR's)")
    num_classes: int = Field(default=10, ge=2, description="labels are drawn from 0..num_classes-1")
    train_size: int = Field(default=512, ge=2, description="training images")
    test_size: int = Field(default=128, ge=1, description="test images")
    augment: bool = Field(default=False, description="CIFAR's random crop and flip")


class DigitsParams(DatasetParams):
    """scikit-learn's bundled 8x8 digits; a test split is carved out of its 1,797 images."""

    test: float = Field(default=0.2, gt=0, lt=1, description="fraction held out for testing")


class MNISTParams(TorchvisionParams):
    """MNIST through torchvision, or a folder holding the four raw IDX files."""


class FashionMNISTParams(TorchvisionParams):
    """Fashion-MNIST through torchvision, or a folder holding its four raw IDX files."""


class NpzParams(DatasetParams):
    """Your own data: an .npz with x, y and optionally x_test, y_test."""

    path: Path = Field(description="the .npz file")
    test: float = Field(default=0.2, gt=0, lt=1,
                        description="fraction held out for testing when x_test is absent")


class ImageFolderParams(DatasetParams):
    """Images in torchvision's ImageFolder layout: ``root/train/<class>/*.jpg`` and
    ``root/val/<class>/*.jpg`` (ImageNet's).

    ``image_size``, ``crop_fraction``, ``mean``, ``std`` and ``interpolation`` left unset take the
    model's own data config where its architecture declares one (a timm model's), else
    the defaults below.
    """

    # What an unset field becomes when the model declares no data config.
    FALLBACK: ClassVar[dict[str, Any]] = {
        "image_size": 224, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
        "interpolation": "bilinear", "crop_fraction": 0.875}

    root: Path = Field(description="folder holding the train and test folders")
    train: str = Field(default="train", description="training folder under root")
    test: str = Field(default="val", description="test folder under root (same classes)")
    image_size: int | None = Field(default=None, ge=8, description="side of the square crops; "
                                   "default: the model's data config, else 224")
    resize: int | None = Field(default=None, ge=8, description="evaluation images are "
                               "resized to this, then center-cropped; default: image_size / "
                               "crop_fraction")
    crop_fraction: float | None = Field(
        default=None, gt=0, le=1, description="the share of the resized evaluation image's side "
        "its center crop keeps; default: the model's data config, else 0.875")
    mean: tuple[float, float, float] | None = Field(
        default=None, description="per channel; default: the model's data config, else 0.5")
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = Field(
        default=None, description="per channel; default: the model's data config, else 0.5")
    interpolation: Literal["nearest", "bilinear", "bicubic"] | None = Field(
        default=None, description="how images are resized; default: the model's data config, "
        "else bilinear")
    augment: bool = Field(default=True, description="random resized crop and horizontal "
                          "flip of training images")
    storage: Literal["auto", "memory", "stream"] = Field(
        default="auto", description="memory: decode every image once into tensors; stream: "
        "decode each batch in loader workers; auto: memory when it fits memory_limit")
    memory_limit: float = Field(default=2.0, gt=0, description="GiB of decoded float32 "
                                "images below which auto keeps them in memory")
    workers: int = Field(default=4, ge=0, description="loader processes when streaming "
                         "(0: in the training process); results do not depend on it")
    eval_batch_size: int = Field(default=256, ge=1, description="images per evaluation batch "
                                 "when streaming")

    def resolved(self) -> ImageFolderParams:
        """These params with every field still unset given its fallback."""
        unset = {k: v for k, v in self.FALLBACK.items() if getattr(self, k) is None}
        return self.model_copy(update=unset)


class ImageNetParams(ImageFolderParams):
    """ImageNet (ILSVRC-2012) train/val folders; unset, the normalisation is ImageNet's."""

    FALLBACK: ClassVar[dict[str, Any]] = {
        **ImageFolderParams.FALLBACK, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

    root: Path = Field(default=Path("data/imagenet"), description="holds train/ and val/")
    validation: float = Field(default=10000, gt=0, description="training images held out "
                              "for early stopping (a fraction < 1 or a count)")


@hookimpl
def lth_register_datasets(register: RegisterFn) -> None:
    """Register every built-in dataset, those of ``vision`` included."""
    register("digits", lazy(f"{LOCAL}:load_digits"), DigitsParams,
             "scikit-learn's 8x8 digits, embedded")
    register("mnist", lazy(f"{LOCAL}:load_mnist"), MNISTParams,
             "MNIST via torchvision or raw IDX files")
    register("fashion_mnist", lazy(f"{LOCAL}:load_fashion_mnist"), FashionMNISTParams,
             "Fashion-MNIST via torchvision or raw IDX files")
    register("cifar10", lazy(f"{VISION}:load_cifar10"), CIFARParams,
             "CIFAR-10 via torchvision; random crop and flip on the device")
    register("cifar100", lazy(f"{VISION}:load_cifar100"), CIFARParams,
             "CIFAR-100 (fine labels) via torchvision; random crop and flip on the device")
    register("fake", lazy(f"{VISION}:load_fake"), FakeParams,
             "random images from torchvision's FakeData")
    register("npz", lazy(f"{LOCAL}:load_npz"), NpzParams,
             "arrays x, y (x_test, y_test) from an .npz file")
    register("imagefolder", lazy(f"{FOLDER}:load_imagefolder"), ImageFolderParams,
             "class folders of images, in memory or streamed by loader workers")
    register("imagenet", lazy(f"{FOLDER}:load_imagenet"), ImageNetParams,
             "ImageNet train/val folders, streamed; ImageNet's normalisation")
