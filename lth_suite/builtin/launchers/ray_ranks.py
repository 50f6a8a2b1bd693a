"""Units trained data-parallel by several Ray processes each (``ranks_per_unit`` > 1).

A unit's ranks are Ray tasks in one placement group, so they start together, on one node
or several. Rank 0 finds its node's address and a free port, hands them out through
Ray (the first value its task streams back), then runs the unit as a single process
does while the other ranks follow it (``parallel.ranks``). A small task without CPUs of
its own holds the placement group for the unit and retries the whole group when one of
its processes dies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...api import Rendezvous, Unit, UnitDone, UnitFailed, UnitJob, follow_unit, free_port, lead
from . import RayParams

# How long a cancelled unit's rank 0 may take to end its child run before its group goes
CANCEL_GRACE_S = 30
# How long rank 0's failure waits to learn whether a rank's process died under it
LOST_RANK_WAIT_S = 10


class _RankLost(Exception):
    """A process of the unit's group died: the whole group may be tried again."""


def _lead(execute: UnitJob, unit: Unit, world: int, threads: int) -> Iterator[Any]:
    """A Ray task, rank 0: streams where it listens, then the unit's result."""
    import ray
    import torch

    torch.set_num_threads(threads)
    host = ray.util.get_node_ip_address()
    at = Rendezvous(0, world, host, free_port(host))
    yield at.host, at.port
    yield lead(execute, unit, at)


def _follow(execute: UnitJob, at: Rendezvous, threads: int) -> int:
    """A Ray task, a rank other than 0: follows rank 0 to the end of the unit."""
    import torch

    torch.set_num_threads(threads)
    return follow_unit(execute, at)


def run_on_ranks(execute: UnitJob, unit: Unit, params: RayParams,
                 *dependencies: Any) -> UnitDone | None:
    """A Ray task: one unit on ``params.ranks_per_unit`` ranks, after its dependencies
    (resolved ObjectRefs); rank 0's result."""
    if any(result is None for result in dependencies):
        return None  # a dependency was skipped (diverged): nothing to build on
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    bundle = {"CPU": params.num_cpus_per_unit}
    if params.num_gpus_per_unit:
        bundle["GPU"] = params.num_gpus_per_unit
    for attempt in range(params.max_retries + 1):
        group = placement_group([dict(bundle) for _ in range(params.ranks_per_unit)],
                                strategy=params.rank_placement)
        try:
            ray.get(group.ready())
            return _attempt(ray, group, execute, unit, params)
        except _RankLost as lost:
            if attempt == params.max_retries:
                raise UnitFailed(unit.name, f"a process of its ranks died ({lost}); tried "
                                 f"{attempt + 1} time(s)") from None
        finally:
            remove_placement_group(group)  # ends any rank still running
    raise AssertionError("unreachable")


def _attempt(ray: Any, group: Any, execute: UnitJob, unit: Unit,
             params: RayParams) -> UnitDone | None:
    """The unit's ranks started once in ``group``; rank 0's result."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    world, threads = params.ranks_per_unit, max(1, int(params.num_cpus_per_unit))

    def rank(index: int) -> dict[str, Any]:
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
                    group, placement_group_bundle_index=index),
                "num_cpus": params.num_cpus_per_unit, "num_gpus": params.num_gpus_per_unit,
                "max_retries": 0, "name": f"{unit.name}-rank{index}"}

    leader = ray.remote(_lead).options(num_returns="streaming", **rank(0)).remote(
        execute, unit, world, threads)
    followers: list[Any] = []
    try:
        host, port = ray.get(next(leader))
        followers = [ray.remote(_follow).options(**rank(index)).remote(
            execute, Rendezvous(index, world, host, port), threads) for index in range(1, world)]
        result = ray.get(next(leader))
    except KeyboardInterrupt:  # cancelled: rank 0 ends its child run KILLED before it goes
        ray.wait([leader.completed()], timeout=CANCEL_GRACE_S)
        raise
    except ray.exceptions.RayTaskError as exc:  # rank 0 raised: maybe because a rank died
        lost = _lost(ray, followers)
        if lost:
            raise _RankLost(lost) from None
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UnitFailed):
            raise cause from None
        raise UnitFailed(unit.name, _first_line(cause or exc)) from None
    except ray.exceptions.RayError as exc:  # rank 0's own process died
        raise _RankLost(f"rank 0: {_first_line(exc)}") from None
    _lost(ray, followers)  # they end as rank 0 releases them: before their group is removed
    return result


def _lost(ray: Any, followers: list[Any]) -> str:
    """What killed a follower's process (empty: none died)."""
    if not followers:
        return ""
    ready, _ = ray.wait(followers, num_returns=len(followers), timeout=LOST_RANK_WAIT_S)
    for index, ref in enumerate(followers, start=1):
        if ref not in ready:
            continue
        try:
            ray.get(ref)
        except ray.exceptions.RayTaskError:
            continue  # it raised, as ranks do when rank 0 fails under them
        except ray.exceptions.RayError as exc:
            return f"rank {index}: {_first_line(exc)}"
    return ""


def _first_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}".rstrip(": ")
