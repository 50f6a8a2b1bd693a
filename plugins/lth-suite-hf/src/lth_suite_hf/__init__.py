"""lth-suite-hf: Hugging Face ``transformers`` models and text data for lth-suite.

The ``hf`` architecture builds any ``transformers`` Auto class from a config; the ``text``
dataset reads local csv, json/jsonl, parquet or plain-text files through ``datasets`` and
tokenises them once. ``transformers``' own layer classes (GPT-2's ``Conv1D``, stored
(in, out)) are declared prunable. This module holds the hooks and the params models; the
torch code is in ``models.py`` and ``text.py``, registered with ``lazy``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lth_suite.api import DatasetParams, PrunableModule, RegisterFn, hookimpl, lazy

__version__ = "0.1.0"

# Short names of the Auto classes (any other ``AutoModelFor...`` name is taken as written).
AUTO_CLASSES = {
    "causal_lm": "AutoModelForCausalLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "masked_lm": "AutoModelForMaskedLM",
}


class HFParams(BaseModel):
    """``model: {name: hf, auto: causal_lm, config: {model_type: gpt2, n_layer: 2}}``."""

    model_config = ConfigDict(extra="forbid")
    auto: str = Field(default="causal_lm", description="the Auto class: causal_lm, "
                      "sequence_classification, masked_lm, or an AutoModelFor... name")
    config: dict[str, Any] | str = Field(
        description="the model's config: a mapping with model_type and its settings (trained "
        "from scratch), or a folder or hub id holding a config.json (its weights come from "
        "model.pretrained)")
    attn_implementation: Literal["eager", "sdpa"] = Field(
        default="eager", description="the attention kernel (eager: deterministic on every device)")

    @field_validator("auto")
    @classmethod
    def _an_auto_class(cls, auto: str) -> str:
        if auto not in AUTO_CLASSES and not auto.startswith("AutoModel"):
            raise ValueError(f"unknown Auto class '{auto}' (known: {', '.join(AUTO_CLASSES)}, "
                             "or an AutoModelFor... name)")
        return auto

    @field_validator("config")
    @classmethod
    def _names_a_model_type(cls, config: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(config, dict) and "model_type" not in config:
            raise ValueError("a config mapping needs model_type (gpt2, bert, llama, ...)")
        return config


class TextParams(DatasetParams):
    """``dataset: {name: text, train: corpus.txt, tokenizer: bytes, block_size: 128}``."""

    train: str = Field(min_length=1, description="the training file: csv, json, jsonl, "
                       "parquet or plain text (.txt, .md, ...)")
    test: str | None = Field(default=None, description="the test file (same format); null: "
                             "the last test_fraction of the training file")
    test_fraction: float = Field(default=0.1, gt=0, lt=1,
                                 description="held out as the test split when no test file")
    text_column: str = Field(default="text", min_length=1)
    label_column: str | None = Field(
        default=None, description="a column of labels: one example per row, padded to "
        "block_size (task sequence_classification); null: the text packed into blocks of "
        "block_size tokens (task causal_lm)")
    tokenizer: str = Field(default="bytes", min_length=1, description="a tokenizer folder "
                           "or hub id, or bytes (UTF-8 bytes, no files)")
    block_size: int = Field(default=128, ge=2, le=65536,
                            description="tokens per block (causal_lm) or per example")
    cache: str | None = Field(default=None, description="where tokenised data is cached; "
                              "null: ~/.cache/lth-suite/text")


@hookimpl
def lth_register_architectures(register: RegisterFn) -> None:
    """Register ``hf``."""
    register("hf", lazy("lth_suite_hf.models:build"), HFParams,
             "a transformers {auto} model from its config")


@hookimpl
def lth_register_datasets(register: RegisterFn) -> None:
    """Register ``text``."""
    register("text", lazy("lth_suite_hf.text:load"), TextParams,
             "a local text file, tokenised once ({tokenizer})")


@hookimpl
def lth_prunable_modules() -> list[PrunableModule]:
    """GPT-2's ``Conv1D`` (a linear layer stored (in, out)) and its kin."""
    return [PrunableModule("transformers.pytorch_utils:Conv1D", kind="linear", in_axis=0)]
