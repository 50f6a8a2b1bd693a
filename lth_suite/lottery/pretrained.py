"""Pretrained starting points: ``model.pretrained`` read, checked and loaded.

The weights become the level-0 starting point, so rewinding to ``init`` rewinds to them
(the setting of the BERT and ViT ticket papers). A file is a safetensors file or a torch
state dict (also one saved under a ``state_dict`` or ``model`` key, as training scripts
do); a name that is not a file is a Hugging Face hub id, fetched where the hub is
reachable. Every problem is one ``SpecError`` line naming the file, raised before any
run starts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import SpecError

FIELD = "model.pretrained"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # tried in this order
SHOWN = 3  # mismatched tensors named in the error


def _problem(message: str) -> SpecError:
    return SpecError([(FIELD, message)])


def _from_hub(repo_id: str) -> Path:
    """The checkpoint of a hub repository, downloaded (or from the local cache)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise _problem(f"'{repo_id}' is not a file, and huggingface_hub (needed to fetch "
                       "it from the hub) is not installed") from None
    from huggingface_hub.errors import EntryNotFoundError

    for filename in HUB_FILES:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except EntryNotFoundError:  # the repository lacks this file: try the next
            reason = f"it has none of {', '.join(HUB_FILES)}"
        except Exception as exc:  # offline, unknown repository: no other file would come
            first = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"{type(exc).__name__}: {first}"
            break
    raise _problem(f"'{repo_id}' is not a file and the hub did not give it ({reason})")


def read_state_dict(source: str) -> dict[str, torch.Tensor]:
    """The tensors of a pretrained checkpoint: a local file, or a hub id."""
    path = Path(source).expanduser()
    if not path.exists():
        looks_like_hub_id = source.count("/") == 1 and not source.startswith((".", "/", "~"))
        if not looks_like_hub_id:
            raise _problem(f"{source}: no such file")
        path = _from_hub(source)
    if path.is_dir():
        raise _problem(f"{path}: is a folder; name the checkpoint file in it")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _problem(f"{path}: not a safetensors file or torch state dict "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                       ) from None
    for key in ("state_dict", "model"):  # a training script's checkpoint around it
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in loaded.values()):
        raise _problem(f"{path}: holds no state dict of tensors")
    return loaded


def mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model``, tensor by tensor."""
    expected = model.state_dict()
    found = [f"{name} missing" for name in expected if name not in state]
    found += [f"{name} unexpected" for name in state if name not in expected]
    found += [f"{name} {tuple(state[name].shape)} != {tuple(tensor.shape)}"
              for name, tensor in expected.items()
              if name in state and state[name].shape != tensor.shape]
    return found


def read_pretrained(model: nn.Module, source: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The tensors of ``model.pretrained`` and the model's tensors it lacks on purpose.

    A model with a ``read_pretrained(source)`` method reads its own library's checkpoints
    (a Hugging Face ``save_pretrained`` folder, with a head the checkpoint lacks): the
    method returns ``(state, own)``, ``own`` naming the tensors that keep the model's seeded
    initialisation, or None to leave ``source`` to :func:`read_state_dict`.
    """
    reader = getattr(model, "read_pretrained", None)
    found = reader(source) if callable(reader) else None
    if found is None:
        return read_state_dict(source), ()
    state, own = found
    return state, tuple(own)


def load_pretrained(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                    own: tuple[str, ...] = ()) -> None:
    """Copy ``state`` into ``model`` in place; every tensor must match by name and shape,
    except those named in ``own``, which keep the model's own initialisation."""
    problems = [p for p in mismatches(model, state) if p.removesuffix(" missing") not in own]
    if problems:
        more = f" and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise _problem(f"{source} does not fit the model: {'; '.join(problems[:SHOWN])}{more}")
    model.load_state_dict(state, strict=not own)
