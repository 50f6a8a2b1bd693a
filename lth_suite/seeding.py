"""Seeds derived from the spec's seed, so every random choice is reproducible."""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *keys: object) -> int:
    """A 63-bit seed for ``keys`` (e.g. "init", replicate) under the ``base`` seed."""
    text = "/".join(str(k) for k in (base, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
