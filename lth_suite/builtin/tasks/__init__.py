"""Built-in tasks: ``classification`` (the default), ``causal_lm`` and ``sequence_classification``."""

from __future__ import annotations

from ...api import RegisterFn, hookimpl, lazy


@hookimpl
def lth_register_tasks(register: RegisterFn) -> None:
    """Register ``classification``, ``causal_lm`` and ``sequence_classification``."""
    register("classification", lazy("lth_suite.builtin.tasks.text:classification"),
             description="one label per example: cross-entropy loss, accuracy")
    register("causal_lm", lazy("lth_suite.builtin.tasks.text:causal_lm"),
             description="next-token prediction: shifted cross-entropy, perplexity, token accuracy")
    register("sequence_classification", lazy("lth_suite.builtin.tasks.text:sequence_classification"),
             description="one label per token sequence (ids and attention mask): "
             "cross-entropy loss, accuracy")
