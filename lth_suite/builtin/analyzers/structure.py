"""``structure``: what the ticket's sparsity does to units, filters and channels.

A unit (a linear output row, a conv filter) whose incoming weights are all pruned
outputs a constant (its bias through the nonlinearity), and an input unit (a linear
column, a conv input channel) whose outgoing weights are all pruned is ignored: both
are effectively removed, and a structured ticket could drop them physically.
"""

from __future__ import annotations

import logging
from statistics import mean

import torch

from ...api import TICKET, Analysis, ExperimentFinished, LevelFinished, NoParams
from .connectivity import Graph, Unsupported, chain_graph, connectivity, traced_graph

log = logging.getLogger(__name__)


def unit_counts(keep: torch.Tensor) -> dict[str, float]:
    """Units of one tensor: outputs without kept incoming weights, inputs without outgoing."""
    keep = keep.to("cpu", torch.bool)
    per_out = keep.reshape(keep.shape[0], -1)  # a row of a linear, a whole conv filter
    per_in = keep.transpose(0, 1).reshape(keep.shape[1], -1)  # a column, an input channel
    row = {"density": float(keep.float().mean()), "units": keep.shape[0],
           "units_no_in": int((~per_out.any(1)).sum()), "inputs": keep.shape[1],
           "inputs_no_out": int((~per_in.any(1)).sum())}
    if keep.dim() == 4:  # how evenly a conv's kept weights spread over filters and channels
        for label, per in (("filter", per_out), ("channel", per_in)):
            kept = per.float().mean(1)
            row[f"{label}_kept_min"] = float(kept.min())
            row[f"{label}_kept_median"] = float(kept.quantile(0.5))
            row[f"{label}_kept_max"] = float(kept.max())
        row["empty_filters"] = row["units_no_in"] / row["units"]
        row["empty_channels"] = row["inputs_no_out"] / row["inputs"]
    return row


def _fraction(parts: list[tuple[int, int]]) -> float | None:
    total = sum(n for _, n in parts)
    return sum(k for k, _ in parts) / total if total else None


class Structure:
    """Per-layer density, removed units, filter/channel spread and input-to-output connectivity.

    The connectivity graph is traced once per experiment from a freshly built network
    (``torch.fx``; residual nets included). Without a network to trace (an event built
    by hand) or when tracing fails, the prunable layers are taken as a chain in their
    order; when neither works there are no connectivity metrics.
    """

    def __init__(self) -> None:
        self.graph: Graph | None = None
        self.traced = False

    def _graph(self, event: LevelFinished) -> Graph | None:
        if self.traced:
            return self.graph
        self.traced = True
        names = {layer.name for layer in event.layers}
        experiment = event.experiment
        if experiment is not None:
            try:
                # build_model reseeds torch's global generators: keep the caller's state.
                cuda = [experiment.device] if experiment.device.type == "cuda" else []
                with torch.random.fork_rng(devices=cuda), torch.no_grad():
                    model = experiment.build_model(experiment.spec.experiment.seed).eval()
                    self.graph = traced_graph(model, experiment.data.x_test[:2], names)
                return self.graph
            except Exception as exc:  # noqa: BLE001 - any trace failure means "use the chain"
                log.info("structure: cannot trace the network (%s); assuming a chain", exc)
        masks = [b.mask for b in event.branches]
        self.graph = chain_graph([(layer.name, tuple(masks[0][layer.name].shape))
                                  for layer in event.layers]) if masks else None
        return self.graph

    def after_level(self, event: LevelFinished) -> Analysis:
        """Per (replicate, layer) rows in the table; fractions over replicates in metrics."""
        graph = self._graph(event)
        kinds = {layer.name: layer.kind for layer in event.layers}
        table: list[dict] = []
        per_replicate: list[dict[str, float]] = []
        for ticket in event.of(TICKET):
            mask = {name: ticket.mask[name].to("cpu") for name in kinds}
            units, inputs = self._connected(graph, mask)
            rows = []
            for name, kind in kinds.items():
                row = {"replicate": ticket.replicate, "layer": name, "kind": kind,
                       **unit_counts(mask[name])}
                if units is not None:
                    row["connected"] = int(units[name].sum())
                rows.append(row)
            table += rows
            per_replicate.append(self._summary(rows, inputs))
        keys = sorted({k for summary in per_replicate for k in summary})
        metrics = {k: mean(s[k] for s in per_replicate if k in s) for k in keys}
        return Analysis(metrics=metrics, table=table)

    @staticmethod
    def _connected(graph: Graph | None, mask: dict[str, torch.Tensor]):
        if graph is None:
            return None, None
        try:
            return connectivity(graph, mask)
        except Unsupported as exc:
            log.info("structure: no connectivity (%s)", exc)
            return None, None

    @staticmethod
    def _summary(rows: list[dict], inputs: torch.Tensor | None) -> dict[str, float]:
        """Pooled fractions for one replicate; a metric without any unit is left out."""
        conv = [r for r in rows if "empty_filters" in r]
        hidden = [r for r in rows if r["kind"] == "linear"]
        output = [r for r in rows if r["kind"] == "output"]
        values = {
            "units_no_in": _fraction([(r["units_no_in"], r["units"]) for r in rows]),
            "inputs_no_out": _fraction([(r["inputs_no_out"], r["inputs"]) for r in rows]),
            "empty_filters": _fraction([(r["units_no_in"], r["units"]) for r in conv]),
            "empty_channels": _fraction([(r["inputs_no_out"], r["inputs"]) for r in conv]),
        }
        if inputs is not None:
            values["connected_inputs"] = _fraction([(int(inputs.sum()), len(inputs))])
            values["connected_channels"] = _fraction([(r["connected"], r["units"]) for r in conv])
            values["connected_units"] = _fraction([(r["connected"], r["units"]) for r in hidden])
            values["connected_outputs"] = _fraction([(r["connected"], r["units"]) for r in output])
        return {k: v for k, v in values.items() if v is not None}

    def after_experiment(self, event: ExperimentFinished) -> Analysis:
        """Nothing beyond the per-level values."""
        return Analysis()


def structure(params: NoParams) -> Structure:
    """The factory of ``structure``."""
    return Structure()
