"""Data-parallel experiments (under torchrun, or one unit on a launcher's ranks): rank 0
runs the experiment, the others follow.

Rank 0 plans, prunes, rewinds, resumes and logs exactly as a single process does. Before
each training it sends the training (weights, mask, seed, schedule position) to the
other ranks, which train the same network beside it on their shares of the batches.
The masks and starting weights every rank trains are rank 0's, so they are identical by
construction; only rank 0 touches the tracking store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import Diverged, LthError
from ..spec.sections import ExperimentSpec
from ..training.distributed import check_split, group, join, leave, receive, send, together
from ..training.single import train
from .torchrun import launched

if TYPE_CHECKING:
    from ..lottery.experiment import Experiment


def follow(experiment: Experiment) -> int:
    """A rank other than 0: train what rank 0 sends until it says it is done; how many."""
    model = experiment.build_model(experiment.spec.experiment.seed)
    trained = 0
    while (job := receive()) is not None:
        model.load_state_dict(job.state)
        try:
            with together():
                train(model, job.mask.to(experiment.device), experiment.data, experiment.config,
                      data_seed=job.data_seed, start_iteration=job.start_iteration,
                      constant_lr=job.constant_lr, capture_at=job.capture_at)
        except Diverged:  # the loss is averaged over ranks: rank 0 saw it too, and decides
            pass
        trained += 1
    return trained


@contextmanager
def leading() -> Iterator[None]:
    """Rank 0 around the experiment: the other ranks are told it is done, however it ends."""
    ended = False
    try:
        yield
        ended = True
    finally:
        if group() is not None:
            try:
                send(None)
            except Exception:
                if ended:  # else a rank died, and what stopped rank 0 says more
                    raise
            finally:
                leave()


def train_as_follower_rank(experiment: Experiment) -> bool:
    """Whether this process is a rank other than 0; it then follows rank 0 to the end."""
    ranks = group()
    if ranks is None or ranks.leader:
        return False
    try:
        follow(experiment)
    except KeyboardInterrupt:  # torchrun passes Ctrl-C and SIGTERM to every rank: rank 0 says
        raise SystemExit(130) from None  # how to resume; the others end quietly
    finally:
        leave()
    return True


def join_torchrun(spec: ExperimentSpec, in_process: bool) -> bool:
    """Join torchrun's process group when it started several processes; whether it did."""
    if not launched():
        return False
    if not in_process:
        raise LthError(f"launcher: '{spec.launcher.name}' under torchrun: torchrun trains one "
                       "experiment data-parallel in its processes; use the local launcher")
    check_data_parallel(spec, int(os.environ["WORLD_SIZE"]), "processes torchrun started",
                        "under torchrun")
    join(spec.device, spec.training.batch_size)
    return True


def check_data_parallel(spec: ExperimentSpec, world: int, processes: str, where: str) -> None:
    """Refuse a spec that cannot train data-parallel over ``world`` processes (named by
    ``processes`` and ``where`` in the error), before anything is logged."""
    if spec.sparsity is not None and spec.sparsity.dynamic is not None:
        # Its mask updates happen on rank 0 during training: the other ranks' masks would drift.
        raise LthError(f"sparsity.dynamic: dynamic sparse training does not run {where}; "
                       "run it in one process")
    check_split(spec.training.batch_size, world, processes)
