"""Built-in analyzers; the larger ones live in their own modules."""

from __future__ import annotations

from statistics import mean

from ..events import ExperimentFinished, LevelFinished
from ..hookspecs import hookimpl
from ..registry import NoParams, RegisterFn
from .init_stats_analyzer import InitStats
from .instability_analyzer import Instability, InstabilityParams
from .similarity_analyzer import MaskSimilarity
from .structure_analyzer import Structure


class LayerDensity:
    """Density of each prunable tensor of the ticket, averaged over replicates."""

    def after_level(self, event: LevelFinished) -> dict[str, float]:
        """Density per prunable tensor, keyed by the tensor's name."""
        tickets = event.of("ticket")
        names = [layer.name for layer in event.layers]
        return {name: mean(t.mask.layer_density()[name] for t in tickets)
                for name in names}

    def after_experiment(self, event: ExperimentFinished) -> dict[str, float]:
        """Nothing beyond the per-level values."""
        return {}


@hookimpl
def lth_register_analyzers(register: RegisterFn) -> None:
    """Register ``layer_density``, ``mask_similarity``, ``structure``, ``init_stats`` and
    ``instability``."""
    register("layer_density", lambda params: LayerDensity(), NoParams,
             "per-layer density of the ticket at every level")
    register("mask_similarity", lambda params: MaskSimilarity(), NoParams,
             "IoU of ticket masks across levels, replicates and the random_prune control, "
             "beside chance")
    register("structure", lambda params: Structure(), NoParams,
             "removed units, filter/channel spread and input-to-output connectivity")
    register("init_stats", lambda params: InitStats(), NoParams,
             "|w| and sign of kept vs pruned weights at init and at the rewind point")
    register("instability", Instability, InstabilityParams,
             "linear mode connectivity: error barrier between two data orders (opt-in, "
             "two extra trainings per replicate and level)")
