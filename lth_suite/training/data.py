"""In-memory datasets: tensors on the device, batches drawn by index, no DataLoader."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import DataError
from ..plugins.params import DatasetParams  # noqa: F401 - defined without torch, re-exported here
from ..seeding import derive_seed


@dataclass(frozen=True)
class DataInfo:
    """What an architecture needs to know about the data."""

    name: str
    input_shape: tuple[int, ...]  # per example, e.g. (1, 28, 28)
    num_classes: int  # for next-token prediction: the vocabulary's size
    synthetic: bool = False
    # Token data: the padding token's id, and where its tokenizer comes from (a folder, a
    # hub id, or "bytes"), so that an exported ticket can carry it.
    pad_token_id: int | None = None
    tokenizer: str | None = None


# Maps a batch of training examples (on its device) and a generator on that device to
# augmented examples of the same shape; applied to training batches only.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class RawData:
    """What a dataset plugin returns: training and test arrays, already normalised."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: DataInfo
    augment: Augment | None = None


@dataclass
class Splits:
    """Train, validation and test tensors, all on one device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: DataInfo
    augment: Augment | None = None

    def to(self, device: torch.device) -> Splits:
        """The same splits on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return Splits(info=self.info, augment=self.augment, **moved)

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}

    @property
    def device(self) -> torch.device:
        """The device every split is on."""
        return self.x_train.device


def split_validation(raw: RawData, params: DatasetParams) -> Splits:
    """Hold a validation split out of the training data, then take the subset."""
    train, val = split_indices(len(raw.y_train), params)
    return Splits(raw.x_train[train], raw.y_train[train], raw.x_train[val], raw.y_train[val],
                  raw.x_test, raw.y_test, raw.info, raw.augment)


def split_indices(total: int, params: DatasetParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and validation indices among ``total`` training examples."""
    size = int(round(params.validation * total)) if params.validation < 1 else int(params.validation)
    if params.validation >= 1 and params.validation != int(params.validation):
        raise DataError("dataset.validation: a count of examples must be a whole number")
    if size < 1 or size >= total:
        raise DataError(f"dataset.validation: {size} validation examples leave no training "
                        f"data out of {total}")
    generator = torch.Generator().manual_seed(derive_seed(params.split_seed, "validation"))
    order = torch.randperm(total, generator=generator)
    val, train = order[:size], order[size:]
    if params.subset is not None:
        if params.subset > len(train):
            raise DataError(f"dataset.subset: {params.subset} is more than the "
                            f"{len(train)} training examples")
        train = train[: params.subset]
    return train, val


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop after padding on every side, then a random horizontal flip (CIFAR's).

    Works on a whole NCHW batch on its own device: one gather, no per-example loop.
    ``fill`` is the per-channel value of the padding. Datasets normalise before
    augmenting, so they pass the normalised value of a raw 0 (``-mean / std``): that
    is exactly zero-padding the raw image and then normalising, as open_lth and
    torchvision's ``RandomCrop(32, padding=4)`` before ``Normalize`` do.
    """

    padding: int = 4
    fill: Sequence[float] = (0.0,)
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """An augmented copy of the batch ``x``, drawn from ``generator``."""
        n, channels, height, width = x.shape
        pad, device = self.padding, x.device
        fill = list(self.fill) * channels if len(self.fill) == 1 else list(self.fill)
        if len(fill) != channels:
            raise ValueError(f"RandomCropFlip: {len(self.fill)} fill values for "
                             f"{channels} channels")
        padded = x.new_empty(n, channels, height + 2 * pad, width + 2 * pad)
        for channel, value in enumerate(fill):  # a scalar fill each: no host-to-device copy
            padded[:, channel].fill_(value)
        padded[:, :, pad: pad + height, pad: pad + width] = x
        top = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
        left = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
        columns = torch.arange(width, device=device).expand(n, width)
        if self.flip:
            flipped = torch.rand(n, 1, generator=generator, device=device) < 0.5
            columns = torch.where(flipped, width - 1 - columns, columns)
        rows = top + torch.arange(height, device=device)  # (n, height)
        columns = left + columns  # (n, width)
        # Advanced indices around the channel slice put their dims first: (n, h, w, c).
        batch = torch.arange(n, device=device)[:, None, None]
        crop = padded[batch, :, rows[:, :, None], columns[:, None, :]]
        return crop.permute(0, 3, 1, 2).contiguous()


class BatchOrder:
    """Batch indices of any iteration, reproducible from a seed.

    Each epoch is its own seeded permutation, so training can start at any
    iteration (late rewinding, resume) and draw the same batches as a full run.
    The last partial batch of an epoch is dropped.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, device: torch.device):
        if batch_size > n_examples:
            raise DataError(f"training.batch_size: {batch_size} is larger than the "
                            f"{n_examples} training examples")
        self.n, self.batch_size, self.seed, self.device = n_examples, batch_size, seed, device
        self.per_epoch = n_examples // batch_size
        self._epoch, self._perm = -1, torch.empty(0)

    def indices(self, iteration: int) -> torch.Tensor:
        """The example indices of the batch at ``iteration``."""
        epoch, step = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = torch.randperm(self.n, generator=generator).to(self.device)
            self._epoch = epoch
        return self._perm[step * self.batch_size: (step + 1) * self.batch_size]
