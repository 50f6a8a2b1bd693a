"""Data-parallel training of one network over several processes (``torchrun``'s, or the
ranks a launcher starts for one unit).

Every rank trains the same network on its share of each batch; after the backward pass
each rank masks its gradients, then one all-reduce averages them (and the loss), so
every rank takes the same optimizer step and the weights stay identical everywhere.
The shares of all ranks make up the batch a single process would draw, so N processes
train as one process with the same global batch does, to float rounding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import LthError
from ..pruning.masks import Mask

Batch = tuple[torch.Tensor, torch.Tensor]
# Only the lottery's own trainings run data-parallel: a training an analyzer runs on rank 0
# alone (instability's copies) must not wait for ranks that are not training it.
_TRAINING_TOGETHER: ContextVar[bool] = ContextVar("training_together", default=False)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes."""

    rank: int
    world: int

    @property
    def leader(self) -> bool:
        """Rank 0: the one that plans, prunes and logs."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, ranks): which share of each batch this process trains on."""
        return self.rank, self.world


def group() -> Ranks | None:
    """This process's ranks when it belongs to a data-parallel group; None otherwise."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Ranks(dist.get_rank(), dist.get_world_size())


def current() -> Ranks | None:
    """This process's ranks inside ``together()``, where trainings are data-parallel."""
    return group() if _TRAINING_TOGETHER.get() else None


@contextmanager
def together() -> Iterator[None]:
    """Around a training every rank runs at once: its steps average gradients over ranks."""
    token = _TRAINING_TOGETHER.set(True)
    try:
        yield
    finally:
        _TRAINING_TOGETHER.reset(token)


@dataclass(frozen=True)
class Rendezvous:
    """Where a process joins a group torchrun did not set up: its rank, the group's size,
    and the address rank 0 listens on."""

    rank: int
    world: int
    host: str
    port: int
    gpu: int = 0  # the CUDA device of this process, among those it sees

    @property
    def init_method(self) -> str:
        """The ``tcp://`` URL of rank 0 (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def check_split(batch_size: int, world: int, processes: str) -> None:
    """Refuse a batch that does not split evenly over ``world`` processes (``processes``
    says which ones, for the error)."""
    if batch_size % world:
        raise LthError(f"training.batch_size: {batch_size} does not split evenly over the "
                       f"{world} {processes}")


def join(device: str, batch_size: int, at: Rendezvous | None = None) -> Ranks:
    """Join a process group: torchrun's (from its environment) or the one ``at`` names;
    NCCL with a GPU each, Gloo on CPUs."""
    world = at.world if at else int(os.environ["WORLD_SIZE"])
    check_split(batch_size, world, "processes torchrun started" if at is None else
                "ranks of each unit")
    if not dist.is_initialized():
        gpu = device != "cpu" and torch.cuda.is_available()
        if gpu:  # one GPU per process: the local rank's
            torch.cuda.set_device(at.gpu if at else int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if gpu else "gloo"
        if at is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, init_method=at.init_method, rank=at.rank,
                                    world_size=at.world)
    ranks = group()
    assert ranks is not None
    return ranks


def leave() -> None:
    """Leave the process group (after the last training)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def share_of(batches: Callable[[int], list[Batch]], ranks: Ranks) -> Callable[[int], list[Batch]]:
    """In-memory batches cut to this rank's contiguous share.

    The whole batch is drawn and augmented first, as a single process does, so the
    shares of all ranks are exactly its examples.
    """

    def share(iteration: int) -> list[Batch]:
        found = []
        for x, y in batches(iteration):
            size = len(y) // ranks.world
            part = slice(ranks.rank * size, (ranks.rank + 1) * size)
            found.append((x[part], y[part]))
        return found

    return share


def average_gradients(grads: list[torch.Tensor], loss: torch.Tensor, world: int) -> torch.Tensor:
    """Average the (already masked) gradients and the loss over the ranks, in place, in one
    all-reduce; the averaged loss."""
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0])])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset: offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return flat[-1]


# --------------------------------------------------------------------------------------
# Rank 0's trainings, sent to the other ranks
# --------------------------------------------------------------------------------------
@dataclass
class TrainingJob:
    """One training, as rank 0 sends it to the other ranks."""

    state: dict[str, torch.Tensor]
    mask: Mask
    data_seed: int
    start_iteration: int
    constant_lr: float | None
    capture_at: frozenset[int]


def _broadcast(job: TrainingJob | None) -> TrainingJob | None:
    box = [job]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def send(job: TrainingJob | None) -> None:
    """Rank 0: have the other ranks train ``job`` beside this process; None: it is done."""
    if job is not None:  # on the CPU, so that every backend can carry it
        job = TrainingJob({k: v.cpu() for k, v in job.state.items()}, job.mask.to("cpu"),
                          job.data_seed, job.start_iteration, job.constant_lr, job.capture_at)
    _broadcast(job)


def receive() -> TrainingJob | None:
    """A rank other than 0: the next training rank 0 sends; None when it is done."""
    return _broadcast(None)
