"""Fixtures: this plugin loaded in process next to lth-suite's built-ins, tiny files it reads."""

from __future__ import annotations

import pytest

import lth_suite_hf
from lth_suite.plugins.manager import load_plugins
from lth_suite.testing import hermetic, tracking_uri  # noqa: F401  (autouse: hermetic; a store)

TEXT = ("The lottery ticket hypothesis: a randomly initialised dense network contains a "
        "subnetwork that, trained in isolation, matches the accuracy of the original.\n") * 40



@pytest.fixture(scope="session")
def plugins():
    """Built-ins plus this plugin; installed=False keeps other installed plugins out."""
    return load_plugins(extra=[lth_suite_hf], installed=False)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A plain-text file of a few thousand bytes."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    """A GLUE-style csv: sentences of two kinds, labelled by kind, of varied lengths."""
    folder = tmp_path_factory.mktemp("glue")
    rows = ["sentence,label"]
    for i in range(120):
        positive = i % 2 == 0
        words = ("good great fine " if positive else "bad awful poor ") * (1 + i % 4)
        rows.append(f"{words.strip()} {i},{'pos' if positive else 'neg'}")
    path = folder / "train.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory):
    """A tiny word-level tokenizer saved as a transformers tokenizer folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for line in TEXT.split() for w in [line]} | {"good", "great", "fine",
                                                                   "bad", "awful", "poor"})
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(words)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="[EOS]")
    folder = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(folder)
    return folder
