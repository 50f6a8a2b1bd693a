"""Tasks: how a batch reaches the model, its loss, and its metrics.

A task is a plugin kind (``lth_register_tasks``). The loop hands it the model's output for
a batch (``model(inputs)``) and the batch's targets; the task gives the training loss and,
for evaluation, sums that add up over the batches of a split, which it turns into the
split's mean loss and metrics. The early stop is the evaluation with the lowest
validation loss, whatever the task. ``classification`` is the built-in default, and the
one task a population (several networks in one vectorised pass) trains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # a target that counts in neither the loss nor the metrics (padding)


class Task:
    """The base of every task: subclass it and override what differs.

    ``metrics`` names what ``finish`` returns beside ``loss``; each becomes the history
    columns ``val_<metric>`` and ``test_<metric>``. ``headline`` is the metric the
    summaries and reports quote (``accuracy`` unless the task says otherwise).
    """

    name: str = "task"
    metrics: tuple[str, ...] = ("accuracy",)
    headline: str = "accuracy"
    eval_batch: int | None = None  # examples per evaluation pass; None: the loop's default

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def loss(self, output: torch.Tensor, targets: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """The mean training loss of one batch (a scalar with a gradient)."""
        raise NotImplementedError

    def sums(self, output: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Evaluation sums of one batch, on its device: ``loss`` (summed over what counts),
        ``count`` (how many things counted) and whatever ``finish`` needs."""
        raise NotImplementedError

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        """A split's mean ``loss`` and its ``metrics`` from the sums of all its batches."""
        raise NotImplementedError


class Classification(Task):
    """One label per example, cross-entropy loss, accuracy (lth-suite's original task)."""

    name = "classification"

    def loss(self, output: torch.Tensor, targets: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Cross-entropy of the logits against the labels."""
        return F.cross_entropy(output, targets, label_smoothing=label_smoothing)

    def sums(self, output: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Summed cross-entropy, correct predictions and examples."""
        return {"loss": F.cross_entropy(output.float(), targets, reduction="sum"),
                "correct": (output.argmax(dim=1) == targets).sum(),
                "count": torch.tensor(len(targets), device=targets.device)}

    def finish(self, sums: dict[str, float]) -> dict[str, float]:
        """Mean loss and accuracy."""
        return {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}


CLASSIFICATION = Classification()


def is_classification(task: Task) -> bool:
    """Whether ``task`` is the default one (a copy of it in a worker process included):
    the only task a population trains."""
    return type(task) is Classification


def accumulate(totals: dict[str, torch.Tensor] | None,
               sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add one batch's sums to the running totals (kept on the device: no sync per batch)."""
    if totals is None:
        return dict(sums)
    for key, value in sums.items():
        totals[key] += value
    return totals


def read(totals: dict[str, torch.Tensor]) -> dict[str, float]:
    """The totals as numbers, read back once per split."""
    return {key: value.item() for key, value in totals.items()}
