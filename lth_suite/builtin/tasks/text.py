"""The built-in tasks' torch code: classification, next-token prediction, token sequences.

Token inputs reach the model as one tensor, so that batches, splits and data-parallel
shares stay plain tensors: ``(N, L)`` token ids, or ``(N, 2, L)`` token ids and attention
mask stacked (the architecture unpacks them). Targets equal to ``IGNORE_INDEX`` (-100,
padding) count in neither the loss nor the metrics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...api import CLASSIFICATION, IGNORE_INDEX, NoParams, Task


def classification(params: NoParams) -> Task:
    """The default task: one label per example (the very object the core uses by default)."""
    return CLASSIFICATION


class CausalLM(Task):
    """Next-token prediction: the output at position t is scored against the token at t + 1.

    ``output`` is (N, L, vocabulary), ``targets`` (N, L) token ids (IGNORE_INDEX where padded).
    The loss is the mean over the counted tokens; ``perplexity`` is its exponential and
    ``accuracy`` the fraction of counted next tokens predicted exactly (token accuracy).
    """

    name = "causal_lm"
    eval_batch = 32  # sequences: their logits are (L, vocabulary) each
    metrics = ("perplexity", "accuracy")
    headline = "perplexity"

    @staticmethod
    def _shifted(output: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = output[:, :-1].reshape(-1, output.shape[-1])
        return logits, targets[:, 1:].reshape(-1)

    def loss(self, output: torch.Tensor, targets: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy of each position's prediction of the next token."""
        logits, following = self._shifted(output, targets)
        return F.cross_entropy(logits, following, ignore_index=IGNORE_INDEX,
                               label_smoothing=label_smoothing)

    def sums(self, output: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Summed next-token cross-entropy, correct next tokens and counted tokens."""
        logits, following = self._shifted(output, targets)
        counted = following != IGNORE_INDEX
        return {"loss": F.cross_entropy(logits.float(), following, ignore_index=IGNORE_INDEX,
                                        reduction="sum"),
                "correct": ((logits.argmax(dim=1) == following) & counted).sum(),
                "count": counted.sum()}

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        """Mean loss per token, perplexity and token accuracy."""
        count = max(sums["count"], 1)
        loss = sums["loss"] / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
                "accuracy": sums["correct"] / count}


class SequenceClassification(Task):
    """One label per token sequence; the model reads the ids and the attention mask.

    The attention mask keeps padding out of the model's reading of the sequence; the loss
    and accuracy are per sequence, as classification's.
    """

    name = "sequence_classification"
    eval_batch = 64

    def loss(self, output: torch.Tensor, targets: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Cross-entropy of the logits against the labels."""
        return CLASSIFICATION.loss(output, targets, label_smoothing)

    def sums(self, output: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Summed cross-entropy, correct predictions and sequences."""
        return CLASSIFICATION.sums(output, targets)

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        """Mean loss and accuracy."""
        return CLASSIFICATION.finish(sums)


def causal_lm(params: NoParams) -> Task:
    """The ``causal_lm`` task."""
    return CausalLM()


def sequence_classification(params: NoParams) -> Task:
    """The ``sequence_classification`` task."""
    return SequenceClassification()
