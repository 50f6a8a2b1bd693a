"""The ``text`` dataset: local files read with ``datasets``, tokenised once, cached on disk.

Without a label column the text is one stream of tokens (documents joined by the
tokenizer's end-of-text token, lines of a plain-text file by newlines) cut into blocks of
``block_size`` tokens: inputs and targets are the same block, and the ``causal_lm`` task
shifts them. With one, each row is an example: its tokens truncated and padded to
``block_size``, stacked with their attention mask as ``(2, block_size)``, and its label.
The tokenised tensors are cached under a key of the files' content, the tokenizer's and
the params that shape them, so a second run reads them back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from lth_suite.api import DataError, DataInfo, DataMissing, RawData

from . import TextParams

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
BYTES = "bytes"
CACHE_VERSION = "1"


class ByteTokenizer:
    """UTF-8 bytes as tokens 0-255, end of text 256, padding 257: needs no files."""

    eos_token_id, pad_token_id, vocab_size = 256, 257, 258

    def __call__(self, text: str) -> list[int]:
        """The token ids of ``text``."""
        return list(text.encode("utf-8"))


class HFTokenizer:
    """A ``transformers`` tokenizer from a folder or the hub."""

    def __init__(self, source: str):
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataMissing(f"dataset.tokenizer: {source}: {first}") from None
        t = self.tokenizer
        self.eos_token_id = t.eos_token_id if t.eos_token_id is not None else t.sep_token_id
        self.pad_token_id = t.pad_token_id if t.pad_token_id is not None else self.eos_token_id
        self.vocab_size = len(t)

    def __call__(self, text: str) -> list[int]:
        """The token ids of ``text``, without special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _file(path: str, field: str) -> Path:
    found = Path(path).expanduser()
    if not found.is_file():
        raise DataMissing(f"dataset.{field}: {path}: no such file")
    return found


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tokenizer_key(source: str) -> str:
    """The tokenizer's identity: its files' content for a folder, else its name."""
    folder = Path(source).expanduser()
    if source != BYTES and folder.is_dir():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return ",".join(f"{p.relative_to(folder)}:{_digest(p)}" for p in files)
    return source


def _rows(path: Path, field: str, cache: Path) -> Any:
    """The file's rows, as a ``datasets.Dataset``."""
    import datasets

    builder = FORMATS.get(path.suffix.lower(), "text")
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train",
                                     cache_dir=str(cache / "datasets"))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"dataset.{field}: {path}: cannot be read as {builder} ({first})") from None


def _column(rows: Any, name: str, field: str, path: Path) -> list[Any]:
    if name not in rows.column_names:
        raise DataError(f"dataset.{field}: {path} has no column '{name}' "
                        f"(columns: {', '.join(rows.column_names)})")
    return rows[name]


def _stream(rows: Any, params: TextParams, path: Path, tokenizer: Any) -> list[int]:
    """Every text of the file as one stream of tokens."""
    texts = [str(t) for t in _column(rows, params.text_column, "text_column", path)
             if t is not None]
    if FORMATS.get(path.suffix.lower()) is None:  # plain text: one row per line
        return tokenizer("\n".join(texts))
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text) + [tokenizer.eos_token_id]
    return ids


def _blocks(ids: list[int], size: int, where: str) -> torch.Tensor:
    count = len(ids) // size
    if count < 1:
        raise DataError(f"dataset.{where}: {len(ids)} tokens make no block of {size}")
    return torch.tensor(ids[: count * size], dtype=torch.long).view(count, size)


def _examples(rows: Any, params: TextParams, path: Path, tokenizer: Any,
              labels: dict[Any, int] | None) -> tuple[torch.Tensor, torch.Tensor, dict[Any, int]]:
    """Token ids and attention mask ``(N, 2, L)`` and label indices of every row."""
    texts = _column(rows, params.text_column, "text_column", path)
    raw = _column(rows, str(params.label_column), "label_column", path)
    if labels is None:
        labels = {value: i for i, value in enumerate(sorted(set(raw), key=str))}
    unknown = sorted({str(v) for v in raw if v not in labels})
    if unknown:
        raise DataError(f"dataset.test: {path} has labels the training file lacks: "
                        f"{', '.join(unknown[:5])}")
    size = params.block_size
    x = torch.full((len(texts), 2, size), 0, dtype=torch.long)
    x[:, 0] = tokenizer.pad_token_id
    for row, text in enumerate(texts):
        ids = tokenizer(str(text or ""))[:size]
        x[row, 0, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        x[row, 1, : len(ids)] = 1
    y = torch.tensor([labels[v] for v in raw], dtype=torch.long)
    return x, y, labels


def _tokenise(params: TextParams, tokenizer: Any, cache: Path) -> dict[str, Any]:
    train_path = _file(params.train, "train")
    train_rows = _rows(train_path, "train", cache)
    test_path = _file(params.test, "test") if params.test is not None else None
    test_rows = _rows(test_path, "test", cache) if test_path is not None else None
    if params.label_column is None:
        train = _blocks(_stream(train_rows, params, train_path, tokenizer), params.block_size, "train")
        if test_path is None:
            held = max(1, int(round(params.test_fraction * len(train))))
            if held >= len(train):
                raise DataError(f"dataset.test_fraction: {len(train)} blocks leave no training data")
            train, test = train[:-held], train[-held:]
        else:
            test = _blocks(_stream(test_rows, params, test_path, tokenizer), params.block_size, "test")
        return {"x_train": train, "y_train": train.clone(), "x_test": test, "y_test": test.clone(),
                "classes": tokenizer.vocab_size}
    x, y, labels = _examples(train_rows, params, train_path, tokenizer, None)
    if test_path is None:
        held = max(1, int(round(params.test_fraction * len(y))))
        if held >= len(y):
            raise DataError(f"dataset.test_fraction: {len(y)} rows leave no training data")
        x_test, y_test, x, y = x[-held:], y[-held:], x[:-held], y[:-held]
    else:
        x_test, y_test, _ = _examples(test_rows, params, test_path, tokenizer, labels)
    return {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test,
            "classes": len(labels)}


def cache_key(params: TextParams) -> str:
    """What the tokenised tensors depend on: the files' content, the tokenizer, the params."""
    parts = {"version": CACHE_VERSION, "train": _digest(_file(params.train, "train")),
             "test": _digest(_file(params.test, "test")) if params.test else None,
             "tokenizer": _tokenizer_key(params.tokenizer),
             **params.model_dump(include={"test_fraction", "text_column", "label_column",
                                          "block_size"})}
    if params.test is not None:
        parts.pop("test_fraction")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def load(params: TextParams, seed: int) -> RawData:
    """The tokenised splits, from the cache when the same files and tokenizer made them."""
    from safetensors.torch import load_file, save_file

    cache = Path(params.cache or "~/.cache/lth-suite/text").expanduser()
    key = cache_key(params)
    tensors_file, meta_file = cache / f"{key}.safetensors", cache / f"{key}.json"
    tokenizer = ByteTokenizer() if params.tokenizer == BYTES else HFTokenizer(params.tokenizer)
    if tensors_file.is_file() and meta_file.is_file():
        tensors = load_file(str(tensors_file))
        classes = json.loads(meta_file.read_text())["classes"]
    else:
        found = _tokenise(params, tokenizer, cache)
        classes = found.pop("classes")
        tensors = {k: v.contiguous() for k, v in found.items()}
        cache.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tensors_file) + ".tmp")
        Path(str(tensors_file) + ".tmp").replace(tensors_file)
        meta_file.write_text(json.dumps({"classes": classes}))
    x_train = tensors["x_train"]
    info = DataInfo(name=f"text:{Path(params.train).name}", input_shape=tuple(x_train.shape[1:]),
                    num_classes=int(classes), pad_token_id=int(tokenizer.pad_token_id),
                    tokenizer=params.tokenizer)
    return RawData(x_train, tensors["y_train"], tensors["x_test"], tensors["y_test"], info)


__all__ = ["ByteTokenizer", "HFTokenizer", "load"]
