"""The language-model task against a hand computation; padding stays out of loss and metrics."""

from __future__ import annotations

import math

import torch

from lth_suite.api import IGNORE_INDEX
from lth_suite.builtin.tasks.text import CausalLM


def hand_loss(logits, tokens):
    """Mean over positions t < L-1 of -log softmax(logits[t])[tokens[t+1]], counted by hand."""
    total, count, correct = 0.0, 0, 0
    for n in range(tokens.shape[0]):
        for t in range(tokens.shape[1] - 1):
            target = int(tokens[n, t + 1])
            if target == IGNORE_INDEX:
                continue
            row = logits[n, t].double()
            total += float(torch.logsumexp(row, 0) - row[target])
            correct += int(int(row.argmax()) == target)
            count += 1
    return total / count, correct / count


def test_next_token_loss_perplexity_and_accuracy_match_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7)
    tokens = torch.randint(0, 7, (3, 5))
    tokens[2, 3:] = IGNORE_INDEX  # padding at the end of the last sequence
    task = CausalLM()
    loss, accuracy = hand_loss(logits, tokens)
    assert math.isclose(float(task.loss(logits, tokens)), loss, rel_tol=1e-5)
    sums = {k: float(v) for k, v in task.sums(logits, tokens).items()}
    assert sums["count"] == 3 * 4 - 2
    found = task.finish(sums)
    assert math.isclose(found["loss"], loss, rel_tol=1e-5)
    assert math.isclose(found["perplexity"], math.exp(loss), rel_tol=1e-5)
    assert math.isclose(found["accuracy"], accuracy)


def test_padding_changes_nothing():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5)
    tokens = torch.randint(0, 5, (2, 4))
    tokens[1, 2:] = IGNORE_INDEX
    task = CausalLM()
    other = logits.clone()
    other[1, 1:] = torch.randn(3, 5) * 10  # predictions of padded positions only
    assert torch.equal(task.loss(logits, tokens), task.loss(other, tokens))
