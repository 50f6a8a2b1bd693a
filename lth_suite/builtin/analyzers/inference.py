"""``inference``: what each level's ticket buys on this machine, measured.

For the first replicate's ticket of every level, each format (``dense``, ``csr``,
``bsr``, ``shrunk``, ``2:4`` and those of plugins) is built from the trained, masked
network, checked against it on test examples, then timed and sized
(``lth_suite.analysis.inference`` says how). Opt in: timing takes seconds per level.
"""

from __future__ import annotations

import torch

from ...api import (
    TICKET,
    Analysis,
    ExperimentFinished,
    LevelFinished,
    LthError,
    MeasureSettings,
    build_formats,
    measure_formats,
)
from . import InferenceParams


class Inference:
    """Latency per format and batch size, weight/index/disk bytes, peak forward memory."""

    def __init__(self, params: InferenceParams):
        self.params = params

    def after_level(self, event: LevelFinished) -> Analysis:
        """Metrics ``<format>/b<batch>/latency_ms``, ``.../speedup``, ``<format>/weight_bytes``
        ...; one table row per (format, batch); the machine as tags."""
        experiment = event.experiment
        if experiment is None:
            raise LthError("analyzer 'inference' needs the prepared experiment "
                           "(LevelFinished.experiment) to build the network")
        tickets = event.of(TICKET)
        ticket = tickets[0]
        if not ticket.result.state:
            raise LthError(f"analyzer 'inference': the level {event.level} ticket's weights "
                           "are not in memory (trained in another process)")
        inputs = getattr(experiment.data, "x_test", None)
        if inputs is None:
            raise LthError("analyzer 'inference' needs in-memory test examples; the dataset "
                           "streams them")
        # build_model reseeds torch: leave the generators of the experiment as they were.
        cuda = [experiment.device] if experiment.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            model = experiment.build_model(0).cpu()  # its weights are replaced just below
        model.load_state_dict({k: v.cpu() for k, v in ticket.result.state.items()})
        settings = MeasureSettings(self.params.batches, self.params.threads, self.params.device,
                                   self.params.rounds, self.params.warmup)
        if settings.device == "cuda" and not torch.cuda.is_available():
            raise LthError("analyzer 'inference': device cuda was asked for and torch sees "
                           "no CUDA device")
        formats = build_formats(experiment.plugins.registry, self.params.formats)
        measured = measure_formats(model, ticket.mask.to("cpu"), inputs[:max(settings.batches)],
                                   formats, settings)
        return Analysis(metrics=measured.metrics(),
                        table=[{"replicate": ticket.replicate, **row} for row in measured.rows()],
                        tags={f"machine.{k}": v for k, v in measured.machine.items()})

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values."""
        return Analysis()
