"""Whether torchrun started this process as one of several: asked before torch loads.

Launchers ask it while the spec is checked (the ``local`` launcher refuses worker
processes under torchrun), so this module imports nothing heavy.
"""

from __future__ import annotations

import os


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher setting WORLD_SIZE) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
