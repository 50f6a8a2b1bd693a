"""The ``ray`` launcher: units as Ray tasks on a local instance or a cluster, each on one
process or data-parallel on several (``ranks_per_unit``, see ``ray_ranks``).

Imported only when a spec uses it; Ray itself is imported when the launcher starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...api import ExperimentSpec, Job, Launcher, LthError, Outcome, Unit, UnitFailed
from . import RAY_MISSING, RayParams


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LthError(RAY_MISSING) from None
    return ray


def _run_unit(execute: Any, unit: Unit, threads: int, *dependencies: Any) -> Any:
    """A Ray task: one unit, after its dependencies (resolved ObjectRefs)."""
    if any(result is None for result in dependencies):
        return None  # a dependency was skipped (diverged): nothing to build on
    import torch

    torch.set_num_threads(threads)  # as many as the CPUs reserved, not the machine's
    return execute(unit)


def _reason(unit: Unit, exc: BaseException) -> BaseException:
    """The cause behind a Ray error: the unit's own ``UnitFailed``, or what killed it."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    first = (str(exc).strip().splitlines() or [""])[0]
    return UnitFailed(unit.name, f"{type(exc).__name__}: {first}".rstrip(": "))


@dataclass
class RayLauncher(Launcher):
    """Units as Ray tasks: a unit's dependencies are passed as ObjectRefs, so Ray starts
    it when they finish, on any node with the resources it reserves."""

    params: RayParams
    in_process: ClassVar[bool] = False
    _started: bool = False
    _depth: int = 0

    def __enter__(self) -> RayLauncher:
        """Connect to the cluster (or start a local instance) unless already connected."""
        ray = _ray()
        self._depth += 1
        if self._depth > 1:
            return self
        local = not self.params.address
        if not ray.is_initialized():  # else: reuse the connection there is
            try:
                ray.init(address=self.params.address or None,
                         num_cpus=self.params.num_cpus if local else None,
                         include_dashboard=False if local else None,
                         logging_level=logging.WARNING)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError
                self._depth -= 1
                where = f"at {self.params.address!r}" if self.params.address else "locally"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise LthError(f"launcher.address: cannot start or reach Ray {where}: "
                               f"{first}") from None
            self._started = True
        if local:
            self._check_fits(ray)
        return self

    def check_spec(self, spec: ExperimentSpec) -> None:
        """Refuse a spec its units cannot train data-parallel on ``ranks_per_unit`` ranks."""
        if self.params.ranks_per_unit > 1:
            from ...api import check_data_parallel

            check_data_parallel(spec, self.params.ranks_per_unit, "ranks of each unit "
                                "(launcher.ranks_per_unit)", "on several ranks per unit")

    def _check_fits(self, ray: Any) -> None:
        """On a local instance, a unit's ranks that can never start together are an error,
        not a wait for ever (a cluster may grow: it is not checked)."""
        p = self.params
        if p.ranks_per_unit == 1:
            return
        have = ray.cluster_resources()
        for kind, each in (("CPU", p.num_cpus_per_unit), ("GPU", p.num_gpus_per_unit)):
            if each and p.ranks_per_unit * each > have.get(kind, 0):
                self.__exit__()
                raise LthError(f"launcher.ranks_per_unit: {p.ranks_per_unit} ranks of "
                               f"{each:g} {kind} each do not fit the local Ray instance's "
                               f"{have.get(kind, 0):g} {kind}s")

    def __exit__(self, *exc_info: object) -> None:
        """Stop the local instance this launcher started; leave a cluster running."""
        self._depth -= 1
        if self._depth == 0 and self._started:
            _ray().shutdown()
            self._started = False

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Submit every job's units at once, then collect them as they finish."""
        with self:
            return self._launch(_ray(), jobs)

    def _launch(self, ray: Any, jobs: Sequence[Job]) -> list[Outcome]:
        p = self.params
        if p.ranks_per_unit > 1:  # a unit's ranks reserve the resources, not this task
            from .ray_ranks import run_on_ranks

            task, setting = ray.remote(num_cpus=0, max_retries=0)(run_on_ranks), p
        else:
            task = ray.remote(num_cpus=p.num_cpus_per_unit, num_gpus=p.num_gpus_per_unit,
                              max_retries=p.max_retries)(_run_unit)
            setting = max(1, int(p.num_cpus_per_unit))  # the unit's torch threads
        outcomes = [Outcome() for _ in jobs]
        pending: dict[Any, tuple[int, Unit]] = {}
        for index, job in enumerate(jobs):
            execute = ray.put(job.execute)  # stored once, not pickled into every task
            refs: dict[Unit, Any] = {}
            for unit in job.graph.units:
                needs = [refs[dep] for dep in job.graph.dependencies[unit] if dep in refs]
                refs[unit] = task.options(name=f"{job.label}{unit.name}").remote(
                    execute, unit, setting, *needs)
                pending[refs[unit]] = (index, unit)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    index, unit = pending.pop(ref)
                    self._collect(ray, ref, unit, jobs[index], outcomes[index], pending, index)
        except KeyboardInterrupt:
            for ref in pending:  # a KeyboardInterrupt inside each running unit: runs KILLED
                ray.cancel(ref)
            if pending:  # give the units the time to end their child runs
                ray.wait(list(pending), num_returns=len(pending), timeout=30)
            raise
        return outcomes

    @staticmethod
    def _collect(ray: Any, ref: Any, unit: Unit, job: Job, outcome: Outcome,
                 pending: dict[Any, tuple[int, Unit]], index: int) -> None:
        try:
            result = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return  # cancelled because another unit of its job failed
        except Exception as exc:
            if outcome.error is None:  # the first failure stops the job
                outcome.error, outcome.failed = _reason(unit, exc), unit
                for other, (owner, _) in list(pending.items()):
                    if owner == index:
                        ray.cancel(other)
            return
        outcome.results[unit] = result
        if job.on_done is not None:
            job.on_done(unit, result)
