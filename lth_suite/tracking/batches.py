"""Params, metrics and tags split into ``log_batch`` calls within MLflow's limits."""

from __future__ import annotations

from collections.abc import Iterable

from mlflow.entities import Metric, Param, RunTag

PARAM_BATCH, METRIC_BATCH = 100, 1000  # MLflow's limits per log_batch call
ENTITY_BATCH = 1000  # params, metrics and tags together, per call


def batches(params: list[Param], metrics: list[Metric],
             tags: list[RunTag]) -> Iterable[tuple[list[Param], list[Metric], list[RunTag]]]:
    """Split into ``log_batch`` calls within MLflow's limits, params and tags first."""
    batch: tuple[list[Param], list[Metric], list[RunTag]] = ([], [], [])
    keys: tuple[set[str], set[str]] = (set(), set())
    for kind, items in ((0, params), (2, tags), (1, metrics)):
        for item in items:
            size = sum(map(len, batch))
            full = (size >= ENTITY_BATCH or (kind == 0 and len(batch[0]) >= PARAM_BATCH)
                    or (kind == 2 and len(batch[2]) >= PARAM_BATCH)
                    or (kind == 1 and len(batch[1]) >= METRIC_BATCH)
                    or (kind != 1 and item.key in keys[kind // 2]))
            if full:
                yield batch
                batch, keys = ([], [], []), (set(), set())
            batch[kind].append(item)
            if kind != 1:
                keys[kind // 2].add(item.key)
    if any(batch):
        yield batch
