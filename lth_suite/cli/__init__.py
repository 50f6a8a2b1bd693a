"""The ``lth-suite`` command line: one module per command group."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .. import __version__
from . import experiments, inspection, results, sweeps  # noqa: F401, I001  (register commands, in help order)
from .common import app, out


def version_callback(value: bool) -> None:
    """Print the version and exit."""
    if value:
        out.print(f"lth-suite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=version_callback,
                                                is_eager=True, help="show the version")] = False,
          ) -> None:
    """Lottery Ticket Hypothesis experiments, tracked in MLflow."""


def main() -> None:
    """Console-script entry point."""
    # Idle OpenMP threads sleep instead of spinning (read when torch loads, after this):
    # spinning threads beside other busy processes made every step several times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
