"""Built-in launchers: ``local`` (this machine: in process, or in worker processes) and
``ray`` (tasks on a Ray cluster).

Ray is an optional dependency (``pip install 'lth-suite[ray]'``), imported only when the
``ray`` launcher runs; neither Ray nor torch is imported when this module loads.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...api import LthError, RegisterFn, hookimpl
from .local import LocalLauncher, LocalParams, LocalWorkers, local_launcher

RAY_MISSING = ("launcher 'ray' needs the ray package, which is not installed: "
               "pip install 'lth-suite[ray]'")


class RayParams(BaseModel):
    """Where the Ray cluster is and what each unit reserves on it."""

    model_config = ConfigDict(extra="forbid")
    address: str = Field(default="", description="empty: start a local Ray instance; 'auto': "
                         "connect to the cluster this machine belongs to; or ray://HOST:10001")
    num_cpus_per_unit: float = Field(default=1, gt=0, description="CPUs reserved by each "
                                     "training (by each of its ranks); also its torch threads")
    num_gpus_per_unit: float = Field(default=0, ge=0, description="GPUs reserved by each "
                                     "training (by each of its ranks; fractions share a GPU)")
    ranks_per_unit: int = Field(default=1, ge=1, le=1024, description="processes that train "
                                "each unit data-parallel (Gloo on CPUs, NCCL on GPUs), "
                                "co-scheduled in a placement group; rank 0 logs")
    rank_placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        default="PACK", description="how a unit's ranks spread over nodes (Ray placement "
        "group strategy): PACK fills few nodes, SPREAD uses many")
    max_retries: int = Field(default=3, ge=0, description="times a unit is retried when the "
                             "worker running it dies")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local instance "
                                 "(default: all of this machine's)")

    @model_validator(mode="after")
    def _whole_gpus_per_rank(self) -> RayParams:
        # NCCL refuses two ranks of one group on one GPU, and Ray may pack fractions together
        if self.ranks_per_unit > 1 and self.num_gpus_per_unit % 1:
            raise ValueError(f"num_gpus_per_unit: {self.num_gpus_per_unit} with ranks_per_unit "
                             f"{self.ranks_per_unit}: each rank needs whole GPUs (0, 1, 2, ...)")
        return self


def _ray_launcher(params: RayParams) -> Any:
    if importlib.util.find_spec("ray") is None:
        raise LthError(RAY_MISSING)
    from .ray_tasks import RayLauncher

    return RayLauncher(params)


@hookimpl
def lth_register_launchers(register: RegisterFn) -> None:
    """Register ``local`` and ``ray``."""
    register("local", local_launcher, LocalParams,
             "this machine: every training in this process, one after another, or with "
             "workers: N side by side in worker processes (SQLite store included)")
    register("ray", _ray_launcher, RayParams,
             "trainings as Ray tasks on a local instance or a cluster, as many at once as "
             "the dependencies and resources allow (pip install 'lth-suite[ray]')")


__all__ = ["LocalLauncher", "LocalParams", "LocalWorkers", "RayParams", "lth_register_launchers"]
