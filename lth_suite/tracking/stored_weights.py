"""Weights and masks read back from a store, never by unpickling arbitrary objects.

A store may come from someone else: a pickle in it can run any code when loaded. State
dicts load with ``torch.load(weights_only=True)`` (tensors and plain containers only),
masks are npz files read without pickle, and a logged MLflow model is never loaded:
``mlflow.pytorch.load_model`` unpickles a ``pickle`` model, and ``torch.export.load``
falls back to unpickling a ``pt2`` one's constants. What cannot be read so is refused
with one line naming the run and the artifact.
"""

from __future__ import annotations

import io

import torch

from ..errors import TrackingError
from ..pruning.masks import Mask
from .names import STATE_ARTIFACT


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


def load_state(payload: bytes, run_id: str, artifact: str) -> dict[str, torch.Tensor]:
    """A state dict logged as ``artifact`` of ``run_id``: tensors only, loaded weights-only."""
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects, RuntimeError for a torn zip, ...
        raise TrackingError(f"run {run_id}: artifact {artifact} was refused: it is not a plain "
                            "state dict, and lth-suite never unpickles objects from a store "
                            f"({_first_line(exc)})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise TrackingError(f"run {run_id}: artifact {artifact} was refused: it holds a "
                            f"{type(state).__name__}, not a state dict of named tensors")
    return state


def load_mask(payload: bytes, run_id: str, artifact: str) -> Mask:
    """A mask logged as ``artifact`` of ``run_id`` (an npz of bits, read without pickle)."""
    try:
        return Mask.unpack(payload)
    except Exception as exc:  # not a zip, object arrays (pickle refused), missing shapes
        raise TrackingError(f"run {run_id}: artifact {artifact} was refused: it is not a mask "
                            f"as lth-suite writes them ({_first_line(exc)})") from None



def refuse_logged_model(run_id: str, model: str) -> TrackingError:
    """Why the MLflow model a run logged is not read back: loading it unpickles."""
    return TrackingError(
        f"run {run_id}: artifact {STATE_ARTIFACT} is missing and its logged model {model} "
        "was refused: loading an MLflow model unpickles it (pickle or pt2 alike), which "
        "could run any code; export reads the state_dict.pt that lth-suite logs with "
        "every ticket (and with controls under tracking.log_state_dicts: true)")
