"""``layer_density``: the ticket's density per prunable tensor, at every level."""

from __future__ import annotations

from statistics import mean

from ...api import TICKET, ExperimentFinished, LevelFinished, NoParams


class LayerDensity:
    """Density of each prunable tensor of the ticket, averaged over replicates."""

    def after_level(self, event: LevelFinished) -> dict[str, float]:
        """Density per prunable tensor, keyed by the tensor's name."""
        tickets = event.of(TICKET)
        names = [layer.name for layer in event.layers]
        return {name: mean(t.mask.layer_density()[name] for t in tickets)
                for name in names}

    def after_experiment(self, event: ExperimentFinished) -> dict[str, float]:
        """Nothing beyond the per-level values."""
        return {}


def layer_density(params: NoParams) -> LayerDensity:
    """The factory of ``layer_density``."""
    return LayerDensity()
