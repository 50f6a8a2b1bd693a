"""Built-in analyzers."""

from __future__ import annotations

from statistics import mean

from ..events import ExperimentFinished, LevelFinished
from ..hookspecs import hookimpl
from ..registry import NoParams, RegisterFn


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
    """Register ``layer_density``."""
    register("layer_density", lambda params: LayerDensity(), NoParams,
             "per-layer density of the ticket at every level")
