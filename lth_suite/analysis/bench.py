"""``lth-suite bench``: measure the tickets of a finished experiment (or one ticket run)
in every format, on this machine, as the ``inference`` analyzer does during a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import LthError, TrackingError
from ..tracking.names import (
    BRANCH_PARAM,
    EARLY_STOP_ACCURACY,
    LEVEL_PARAM,
    REPLICATE_PARAM,
    TICKET,
)
from .inference import Measurement, MeasureSettings, build_formats, measure_formats
from .tickets import load_ticket

if TYPE_CHECKING:
    from ..plugins.manager import Plugins
    from ..tracking import RunRecord, StoreReader


@dataclass
class Bench:
    """Per level: the measurement, the ticket's density and accuracy; the runs measured."""

    title: str
    measurements: dict[int, Measurement] = field(default_factory=dict)
    percents: dict[int, float] = field(default_factory=dict)
    accuracy: dict[int, float] = field(default_factory=dict)
    runs: dict[int, str] = field(default_factory=dict)
    inputs_note: str = ""

    def metrics(self) -> dict[str, dict[int, float]]:
        """Every level's metrics as metric -> level -> value (the analyzer's shape)."""
        series: dict[str, dict[int, float]] = {}
        for level, measured in self.measurements.items():
            for key, value in measured.metrics().items():
                series.setdefault(key, {})[level] = value
        return series

    @property
    def machine(self) -> dict[str, str]:
        """The machine of the measurements (one machine for all)."""
        return next(iter(self.measurements.values())).machine if self.measurements else {}


def ticket_runs(reader: StoreReader, key: str) -> tuple[str, list[RunRecord]]:
    """The ticket runs ``key`` names: one child run, or the first replicate's finished
    ticket at every level of an experiment (run id, name or spec hash)."""
    run = reader.run(key)
    if run is not None and run.parent_id is not None:
        return run.name, [run]
    parent = run if run is not None else reader.find_experiment(key)
    by_level: dict[int, RunRecord] = {}
    for child in reader.finished_children(parent.run_id):
        if child.params.get(BRANCH_PARAM) != TICKET:
            continue
        level = int(child.params.get(LEVEL_PARAM, -1))
        replicate = int(child.params.get(REPLICATE_PARAM, 0))
        best = by_level.get(level)
        if best is None or replicate < int(best.params.get(REPLICATE_PARAM, 0)):
            by_level[level] = child
    if not by_level:
        raise TrackingError(f"run {parent.run_id} ({parent.name}) has no finished ticket run "
                            "to measure")
    return parent.name, [by_level[level] for level in sorted(by_level)]


def bench(reader: StoreReader, key: str, settings: MeasureSettings, plugins: Plugins,
          formats: list[str] | None = None) -> Bench:
    """Measure every ticket ``key`` names with ``settings``."""
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LthError("--device cuda: torch sees no CUDA device here")
    chosen = build_formats(plugins.registry, formats)
    title, runs = ticket_runs(reader, key)
    result = Bench(title)
    for run in runs:
        ticket = load_ticket(reader, run, plugins, max(settings.batches))
        level = int(run.params.get(LEVEL_PARAM, 0))
        result.measurements[level] = measure_formats(ticket.model, ticket.mask, ticket.inputs,
                                                     chosen, settings)
        result.percents[level] = 100 * ticket.mask.density()
        if EARLY_STOP_ACCURACY in run.metrics:
            result.accuracy[level] = 100 * run.metrics[EARLY_STOP_ACCURACY]
        result.runs[level] = run.run_id
        result.inputs_note = ticket.inputs_note
    return result
