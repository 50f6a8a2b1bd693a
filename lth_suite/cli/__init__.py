"""The ``lth-suite`` command line: one module per command group."""

from __future__ import annotations

import atexit
import os
import sys
from typing import Annotated

import typer

from .. import __version__
from . import bench, experiments, inspection, results, sweeps  # noqa: F401, I001  (register commands, in help order)
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
    try:
        app()
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def _exit(code: object) -> None:
    """Exit with ``code`` as ``sys.exit`` would, without tearing the interpreter down.

    Every exit handler still runs (MLflow's, multiprocessing's, temporary folders'), and
    the output is flushed; what is skipped is freeing every module and object one by one,
    which takes 1-2 s after torch and MLflow are loaded (more than a quickstart's steps).
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone (a pipe the reader left)
            pass
    os._exit(status)
