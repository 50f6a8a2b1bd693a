"""What tests of this plugin, and of plugins built on it, share: a GPT-2 small enough to
train in seconds on a CPU (importable from anywhere, unlike a tests folder's conftest)."""

from __future__ import annotations

TINY_GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 32,
             "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
