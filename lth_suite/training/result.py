"""What a training returns: its weights, its evaluation history, its captured states."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..tracking.names import (
    EARLY_STOP_ACCURACY,
    EARLY_STOP_ITERATION,
    EARLY_STOP_PERPLEXITY,
    EARLY_STOP_VAL_LOSS,
    EARLY_STOP_VAL_PERPLEXITY,
    FINAL_ACCURACY,
    FINAL_LOSS,
    ITERATION,
)


@dataclass
class TrainResult:
    """The trained weights and the metrics of one training."""

    state: dict[str, torch.Tensor]
    history: list[dict[str, float]]  # one row per evaluation, with "iteration"
    captured: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    # Wall seconds spent in training steps ("steps") and in evaluations ("evaluation");
    # empty when unknown (restored from MLflow, population training).
    timings: dict[str, float] = field(default_factory=dict)

    def release_weights(self) -> None:
        """Drop the trained and captured weights once they are logged and no longer needed.

        The history and the timings stay: the experiment's summary reads them.
        """
        self.state, self.captured = {}, {}

    @property
    def early_stop(self) -> dict[str, float]:
        """The evaluation row with the lowest validation loss (first one on ties)."""
        return min(self.history, key=lambda row: (row["val_loss"], row[ITERATION]))

    def summary(self) -> dict[str, float]:
        """Early-stop iteration and test accuracy there and at the end (and the
        perplexities at the early stop, for a language-model task)."""
        best, last = self.early_stop, self.history[-1]
        found = {
            EARLY_STOP_ITERATION: best[ITERATION],
            EARLY_STOP_VAL_LOSS: best["val_loss"],
            EARLY_STOP_ACCURACY: best["test_accuracy"],
            FINAL_ACCURACY: last["test_accuracy"],
            FINAL_LOSS: last["test_loss"],
        }
        if "val_perplexity" in best and "test_perplexity" in best:
            found[EARLY_STOP_VAL_PERPLEXITY] = best["val_perplexity"]
            found[EARLY_STOP_PERPLEXITY] = best["test_perplexity"]
        return found


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of the model's state dict (channels-last undone)."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for k, v in model.state_dict().items()}
