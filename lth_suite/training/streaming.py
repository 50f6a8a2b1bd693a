"""Streamed datasets: examples decoded from storage by ``DataLoader`` workers, batch by batch.

A dataset plugin whose data does not fit in memory returns ``StreamedData`` instead of
``RawData``. Training batches come from the same seeded per-epoch permutation as the
in-memory path (``BatchOrder``), and each example's augmentation is seeded by the
iteration and the example, so the batch of an iteration is the same whatever the number
of workers and wherever training starts (late rewinding, resume).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError
from ..seeding import derive_seed
from .data import BatchOrder, DataInfo, Splits, split_indices

Batch = tuple[torch.Tensor, torch.Tensor]
Key = tuple[int, int | None]  # (example index, augmentation seed or None: evaluation)


class StreamedSet(Protocol):
    """Examples read one at a time from storage."""

    def __len__(self) -> int:
        """Number of examples."""
        ...

    def load(self, index: int, augment_seed: int | None) -> tuple[torch.Tensor, int]:
        """One normalised example and its label; augmented from ``augment_seed`` when given,
        else prepared for evaluation."""
        ...


@dataclass
class StreamedData:
    """What a dataset plugin returns for data that stays on disk."""

    train: StreamedSet
    test: StreamedSet
    info: DataInfo
    workers: int = 2  # loader processes; 0 decodes in the training process
    eval_batch_size: int = 256


class _Keyed(Dataset):
    """A ``StreamedSet`` as a torch ``Dataset`` indexed by (index, augmentation seed)."""

    def __init__(self, source: StreamedSet):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int]:
        return self.source.load(*key)


class TrainingKeys(Sampler[list[Key]]):
    """The keys of every iteration's batch from ``start`` to ``stop``, in order.

    ``shard`` = (rank, ranks) keeps one rank's contiguous share of each batch: the
    shares of all ranks together are the batch a single process would draw.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, seed: int, start: int,
                 stop: int, shard: tuple[int, int] = (0, 1)):
        self.indices, self.seed, self.start, self.stop = indices, seed, start, stop
        self.order = BatchOrder(len(indices), batch_size, seed, torch.device("cpu"))
        rank, ranks = shard
        share = batch_size // ranks
        self.share = slice(rank * share, (rank + 1) * share)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[Key]]:
        for iteration in range(self.start, self.stop):
            positions = self.order.indices(iteration)[self.share]
            examples = self.indices[positions].tolist()  # one gather, not one index per example
            yield [(example, derive_seed(self.seed, "augment", iteration, p))
                   for example, p in zip(examples, positions.tolist())]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A ``DataError`` raised in a loader worker arrives with the worker's traceback appended
    to its message: give it back its own one line."""
    try:
        yield
    except DataError as exc:
        lines = str(exc).strip().splitlines()
        if len(lines) > 1:
            raise DataError(lines[-1].split("DataError: ", 1)[-1]) from None
        raise


class StreamedBatches:
    """The loop's batches of one member, streamed: iteration ``i`` is always the same batch.

    Read in order the loader runs ahead with its workers; a jump (a new start) restarts it.
    """

    def __init__(self, data: StreamedSplits, batch_size: int, seed: int, stop: int,
                 shard: tuple[int, int] = (0, 1)):
        self.data, self.batch_size, self.seed, self.stop, self.shard = (
            data, batch_size, seed, stop, shard)
        self.next_iteration, self.stream = -1, iter(())

    def __call__(self, iteration: int) -> list[Batch]:
        """The (inputs, targets) of ``iteration`` on the data's device, as a one-member list."""
        if iteration != self.next_iteration:
            keys = TrainingKeys(self.data.train_indices, self.batch_size, self.seed, iteration,
                                self.stop, self.shard)
            self.stream = iter(self.data.loader(self.data.train, keys))
        with one_line_errors():
            inputs, targets = next(self.stream)
        self.next_iteration = iteration + 1
        device = self.data.device
        return [(inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))]


@dataclass
class StreamedSplits:
    """Train, validation (held out of train) and test splits streamed to one device."""

    train: StreamedSet
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    test: StreamedSet
    info: DataInfo
    device: torch.device
    workers: int = 2
    eval_batch_size: int = 256
    augment: None = None  # augmentation happens per example, in ``StreamedSet.load``

    def to(self, device: torch.device) -> StreamedSplits:
        """The same splits, batches sent to ``device``."""
        return replace(self, device=torch.device(device))

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {"train": len(self.train_indices), "validation": len(self.val_indices),
                "test": len(self.test)}

    def loader(self, source: StreamedSet, batches: Sampler[list[Key]] | list[list[Key]],
               workers: int | None = None) -> DataLoader:
        """A loader of the keyed batches, pinned for a GPU."""
        return DataLoader(_Keyed(source), batch_sampler=batches,
                          num_workers=self.workers if workers is None else workers,
                          pin_memory=self.device.type == "cuda")

    def batches(self, batch_size: int, seeds: Sequence[int], stop: int,
                shard: tuple[int, int] = (0, 1)) -> StreamedBatches:
        """The training batches of the one member seeded ``seeds[0]``."""
        if len(seeds) != 1:
            raise ValueError("streamed data trains one network at a time")
        return StreamedBatches(self, batch_size, seeds[0], stop, shard)

    def evaluation(self, split: str) -> Iterator[Batch]:
        """The batches of a whole split ('validation' or 'test'), unaugmented, on the device."""
        source, indices = ((self.train, self.val_indices.tolist()) if split == "validation"
                           else (self.test, range(len(self.test))))
        keys: list[list[Key]] = [[(int(i), None) for i in indices[start: start + self.eval_batch_size]]
                                 for start in range(0, len(indices), self.eval_batch_size)]
        # A split of one batch has nothing to overlap: starting workers would only cost.
        workers = self.workers if len(keys) > 1 else 0
        with one_line_errors():
            for inputs, targets in self.loader(source, keys, workers):
                yield (inputs.to(self.device, non_blocking=True),
                       targets.to(self.device, non_blocking=True))

    def examples(self, count: int) -> torch.Tensor:
        """The first ``count`` test inputs, on the device (a logged model's input example)."""
        return torch.stack([self.test.load(i, None)[0] for i in range(count)]).to(self.device)


AnySplits = Splits | StreamedSplits


def evaluate_split(stepper: Any, data: AnySplits, split: str) -> list[dict[str, float]]:
    """Per member: the task's mean loss and metrics over a split, in memory or streamed
    batch by batch (each batch's means weighed by its examples)."""
    if isinstance(data, Splits):
        x, y = (data.x_val, data.y_val) if split == "validation" else (data.x_test, data.y_test)
        return stepper.evaluate(x, y)
    totals: list[dict[str, float]] = []
    count = 0
    for x, y in data.evaluation(split):
        per_member = stepper.evaluate(x, y)  # means over this batch: weigh them by its size
        totals = totals or [dict.fromkeys(found, 0.0) for found in per_member]
        for total, found in zip(totals, per_member):
            for key, value in found.items():
                total[key] += value * len(y)
        count += len(y)
    return [{key: value / count for key, value in total.items()} for total in totals]


def example_inputs(data: AnySplits, count: int = 2) -> torch.Tensor:
    """A few test inputs on the data's device: the input example of a logged model."""
    return data.x_test[:count] if isinstance(data, Splits) else data.examples(count)


def split_streamed(data: StreamedData, params: Any) -> StreamedSplits:
    """Hold a validation split out of streamed training data, as ``split_validation`` does."""
    train, val = split_indices(len(data.train), params)
    return StreamedSplits(data.train, train, val, data.test, data.info, torch.device("cpu"),
                          data.workers, data.eval_batch_size)
