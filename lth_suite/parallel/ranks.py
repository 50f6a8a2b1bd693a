"""One unit trained data-parallel by several processes a launcher started: its ranks.

Rank 0 runs the unit exactly as one process does (``UnitJob``): it plans, restores,
prunes and logs, and is the only rank that touches the tracking store. Before each
training it sends the training to the other ranks, which train it beside rank 0 on their
shares of every batch (``parallel.data_parallel``). Nothing here knows the launcher: it
only needs each rank's ``Rendezvous``.
"""

from __future__ import annotations

import socket

from ..errors import LthError
from ..training.distributed import Rendezvous, join, leave
from .data_parallel import follow, leading
from .unit_worker import UnitDone, UnitJob
from .units import Unit, UnitFailed


def free_port(host: str) -> int:
    """A TCP port free on ``host`` now, for rank 0 to listen on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _join(job: UnitJob, at: Rendezvous) -> None:
    # The worker's cached preparation: rank 0's ``job(unit)`` reuses it.
    spec = job.experiment().spec
    leave()  # a group an earlier unit of this worker process left behind is not this one
    join(spec.device, spec.training.batch_size, at)


def lead(job: UnitJob, unit: Unit, at: Rendezvous) -> UnitDone | None:
    """Rank 0: join the unit's ranks, then run the unit as one process does while the
    others follow; the unit's result. The others are released however it ends."""
    try:
        _join(job, at)
    except LthError as exc:
        raise UnitFailed(unit.name, str(exc), exc.exit_code) from None
    except Exception as exc:  # the ranks could not meet: name the cause, as units do
        raise UnitFailed(unit.name, f"its ranks could not join: {type(exc).__name__}: "
                         f"{(str(exc).strip().splitlines() or [''])[0]}") from None
    with leading():
        return job(unit)


def follow_unit(job: UnitJob, at: Rendezvous) -> int:
    """A rank other than 0: join the unit's ranks, then train what rank 0 sends until it
    says it is done; how many trainings."""
    try:
        _join(job, at)
        return follow(job.experiment())
    finally:
        leave()
