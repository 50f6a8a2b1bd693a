"""The ``hf`` architecture: a ``transformers`` Auto class built from a config.

The network is the Hugging Face model itself, in a subclass whose ``forward`` takes the
one tensor lth-suite's loop gives it (``(N, L)`` token ids, or ``(N, 2, L)`` ids and
attention mask) and returns the logits. Its state dict is the Hugging Face model's, key for
key, so ``model.pretrained`` reads a ``save_pretrained`` folder and an exported ticket
loads with ``AutoModel*.from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, PretrainedConfig

from lth_suite.api import DataInfo, SpecError

from . import AUTO_CLASSES, HFParams

PREFIX = "Lth"  # the subclass of transformers' ``X`` is ``LthX``, defined in this module
# The text pipeline of a Hugging Face model class, by the end of its name.
PIPELINE_TASKS = {"LMHeadModel": "text-generation", "ForCausalLM": "text-generation",
                  "ForSequenceClassification": "text-classification"}
_CLASSES: dict[str, type] = {}


class TokenForward:
    """The loop's forward pass: one tensor of token ids (and attention mask) in, logits out.

    Any other call (keyword arguments, ``generate``) is the Hugging Face model's own.
    """

    lth_tokenizer: str | None = None  # where the data's tokenizer comes from

    def forward(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Logits of token ids ``(N, L)`` or of ids and attention mask ``(N, 2, L)``."""
        if args or kwargs or not isinstance(inputs, torch.Tensor):
            given = (inputs, *args) if inputs is not None else args
            return super().forward(*given, **kwargs)
        if inputs.is_floating_point():  # a probe of zeros (thread sizing, shapes)
            inputs = inputs.long()
        if inputs.dim() == 3:
            output = super().forward(input_ids=inputs[:, 0], attention_mask=inputs[:, 1])
        else:
            output = super().forward(input_ids=inputs)
        return output.logits

    def transformers_components(self) -> dict[str, Any] | None:
        """The network as MLflow's transformers flavour logs it: the Hugging Face model (of
        its own class, with these weights), the data's tokenizer, and the pipeline task.
        None where the flavour does not apply: byte tokens (no Hugging Face tokenizer) or
        a model class without a text pipeline."""
        base = type(self).__mro__[2]
        task = next((t for suffix, t in PIPELINE_TASKS.items()
                     if base.__name__.endswith(suffix)), None)
        if task is None or self.lth_tokenizer in (None, "bytes"):
            return None
        from transformers import AutoTokenizer

        self.config.architectures = [base.__name__]
        plain = base(self.config)
        plain.load_state_dict(self.state_dict())
        return {"model": plain.eval(), "tokenizer": AutoTokenizer.from_pretrained(
            self.lth_tokenizer), "task": task}

    def read_pretrained(self, source: str) -> tuple[dict[str, torch.Tensor], list[str]] | None:
        """``model.pretrained`` as ``from_pretrained`` reads it, when it names a folder or a
        hub id (a file is left to lth-suite): the checkpoint's tensors, renamed and with its
        base-model prefix as transformers does, and the names of the tensors it lacks (a
        new head), which keep this model's seeded initialisation."""
        path = Path(source).expanduser()
        if path.is_file():
            return None
        from transformers.utils import logging as hf_logging

        base = type(self).__mro__[2]
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report: the run names what it lacks
        try:
            loaded, info = base.from_pretrained(
                str(path) if path.is_dir() else source, config=self.config,
                output_loading_info=True, ignore_mismatched_sizes=True,
                attn_implementation=self.config._attn_implementation)
        except (OSError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError([("model.pretrained", f"{source}: {first}")]) from None
        finally:
            hf_logging.set_verbosity(verbosity)
        mismatched = sorted(info.get("mismatched_keys") or (), key=str)
        if mismatched:
            shown = "; ".join(f"{name} {tuple(a)} != {tuple(b)}" for name, a, b in mismatched[:3])
            raise SpecError([("model.pretrained", f"{source} does not fit the model: {shown}")])
        missing = set(info.get("missing_keys") or [])
        state = {k: v for k, v in loaded.state_dict().items() if k not in missing}
        return state, sorted(missing)

    def export_folder(self, folder: Path) -> list[Path]:
        """Write the network as ``save_pretrained`` does (safetensors, config), under the
        Hugging Face class's own name, with the tokenizer when the data has one."""
        base = type(self).__mro__[2]
        self.config.architectures = [base.__name__]
        self.save_pretrained(folder, safe_serialization=True)
        written = sorted(folder.iterdir())
        source = self.lth_tokenizer
        if source == "bytes":
            (folder / "lth_tokenizer.json").write_text(json.dumps({"tokenizer": "bytes"}))
        elif source is not None:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        return sorted(set(folder.iterdir()) | set(written))


def ticket_class(base: type) -> type:
    """``LthX``: transformers' model class ``X`` with the loop's forward pass (picklable)."""
    name = PREFIX + base.__name__
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (TokenForward, base), {"__module__": __name__,
                                                          "__qualname__": name})
        globals()[name] = _CLASSES[name]
    return _CLASSES[name]


def __getattr__(name: str) -> type:
    """``LthX`` on first use (unpickling a logged model in a fresh process)."""
    base = getattr(transformers, name[len(PREFIX):], None) if name.startswith(PREFIX) else None
    if not isinstance(base, type):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return ticket_class(base)


def config_of(params: HFParams, info: DataInfo) -> PretrainedConfig:
    """The model's config: from ``params.config`` (a mapping with ``model_type``, or a
    folder or hub id holding a config.json), sized to the data."""
    try:
        if isinstance(params.config, str):
            config = AutoConfig.from_pretrained(params.config)
        else:
            settings = dict(params.config)
            config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError([("model.config", first)]) from None
    if params.auto == "sequence_classification":
        config.num_labels = info.num_classes
    if info.pad_token_id is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = info.pad_token_id
    vocab = getattr(config, "vocab_size", None)
    if info.tokenizer is not None and params.auto == "causal_lm" and vocab is not None:
        if isinstance(params.config, dict) and "vocab_size" not in params.config:
            config.vocab_size = info.num_classes  # from scratch: the tokenizer's vocabulary
        elif vocab < info.num_classes:
            raise SpecError([("model.config", f"vocab_size {vocab} is smaller than the "
                              f"tokenizer's {info.num_classes} tokens")])
    return config


def build(params: HFParams, info: DataInfo) -> torch.nn.Module:
    """A Hugging Face model of ``params.auto`` from its config, randomly initialised (the
    runner seeds torch first); ``model.pretrained`` then loads its weights."""
    config = config_of(params, info)
    config._attn_implementation = params.attn_implementation
    auto = getattr(transformers, AUTO_CLASSES.get(params.auto, params.auto))
    try:
        base = auto._model_mapping[type(config)]
    except KeyError:
        raise SpecError([("model.auto", f"{params.auto}: no such model for model_type "
                          f"'{config.model_type}'")]) from None
    model = ticket_class(base)(config)
    model.lth_tokenizer = info.tokenizer
    return model
