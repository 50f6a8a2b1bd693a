"""The params of the three criteria: pydantic models, importable without torch.

The plugin registers them with lazy factories, so ``lth-suite validate`` and
``lth-suite plugins`` never import torch on this package's account.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _AtParams(BaseModel):
    """Params every criterion here takes."""

    model_config = ConfigDict(extra="forbid")
    at: Literal["current", "init"] = Field(
        default="current",
        description="score the request's weights (current) or the network at iteration 0 "
        "(init: pruning at initialisation)")


class SnipParams(_AtParams):
    """SNIP: connection sensitivity |g * w| of a loss on a few training batches."""

    batches: int = Field(default=1, ge=1, description="training batches the loss sums over")
    batch_size: int = Field(default=128, ge=1, description="examples per batch")


class GraspParams(SnipParams):
    """GraSP: gradient signal preservation, from a Hessian-gradient product."""

    temperature: float = Field(default=200.0, gt=0,
                               description="logits are divided by it, as in the authors' code")


class SynflowParams(_AtParams):
    """SynFlow: data-free iterative synaptic flow pruning."""

    iterations: int = Field(default=100, ge=1,
                            description="scoring rounds, on an exponential schedule of targets")
