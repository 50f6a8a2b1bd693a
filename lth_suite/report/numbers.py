"""How numbers read, defined once: the terminal, ``summary.md`` and the figures' axes all
format through these (no matplotlib here, so the CLI imports them cheaply)."""

from __future__ import annotations


def weights_text(percent: float) -> str:
    """Percent of weights remaining, three significant digits: ``100``, ``51.2``, ``3.52``."""
    return f"{percent:.3g}"


def accuracy_text(percent: float) -> str:
    """Test accuracy in percent, two decimals: ``97.31``."""
    return f"{percent:.2f}"
