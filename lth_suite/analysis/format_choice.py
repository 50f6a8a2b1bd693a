"""``export --format``: write a ticket in one runnable format (``auto``: the fastest correct
one, measured here), then reload what was written and check it against the masked dense
network, so an export that would not run the same function is never reported as done."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import LthError
from .format_export import EXPORTABLE, load_exported, save_format
from .formats import Representation
from .inference import OK, Measurement, MeasureSettings, build_formats, measure_formats
from .inference import relative_error as error_of
from .tickets import StoredTicket

if TYPE_CHECKING:
    from ..plugins.manager import Plugins

AUTO = "auto"
CHOICES = (AUTO, *EXPORTABLE)


@dataclass
class Chosen:
    """The format chosen for a ticket, as built, and what was measured to choose it."""

    format: str
    representation: Representation
    measurement: Measurement


@dataclass
class FormatExport:
    """The format written, its files, what was measured to choose it, the reload's error."""

    format: str
    files: list[Path]
    measurement: Measurement
    reload_error: float  # largest |reloaded - dense| over the largest |dense| output
    inputs_note: str


def choose_format(ticket: StoredTicket, choice: str, batch: int, device: str,
                  plugins: Plugins) -> Chosen:
    """Build and measure the candidate formats of ``ticket`` at ``batch``: the one asked
    for, or (``auto``) the fastest whose outputs match. Nothing is written; a format that
    is wrong or does not apply is an ``LthError`` naming it."""
    if choice not in CHOICES:
        raise LthError(f"--format: unknown format '{choice}'; choose one of {', '.join(CHOICES)}")
    candidates = [f for f in EXPORTABLE if f in plugins.registry.names("format")]
    names = candidates if choice == AUTO else [choice]
    built: dict[str, Representation] = {}
    formats = {}
    for name, build in build_formats(plugins.registry, names).items():
        def keep(request, name=name, build=build):  # remember what was built, to save it
            built[name] = representation = build(request)
            return representation
        formats[name] = keep
    settings = MeasureSettings(batches=[batch], device=device, rounds=5)
    measurement = measure_formats(ticket.model, ticket.mask, ticket.inputs[:batch], formats,
                                  settings)
    correct = [r for r in measurement.results if r.status == OK and r.format in names]
    if not correct:
        result = measurement.result(choice)
        why = f"{result.status}: {result.reason}" if result is not None else "not built"
        raise LthError(f"--format {choice}: the ticket of run {ticket.run.run_id} cannot be "
                       f"written in this format ({why})")
    chosen = (min(correct, key=lambda r: r.seconds[batch]).format if choice == AUTO
              else correct[0].format)
    return Chosen(chosen, built[chosen], measurement)


def write_format(chosen: Chosen, ticket: StoredTicket, out: Path,
                 plugins: Plugins) -> FormatExport:
    """Write the chosen format into ``out``, reload it and check its outputs; a reload
    that does not match removes what was written."""
    name, representation = chosen.format, chosen.representation
    model = ticket.model if name == "2:4" else representation.model.to("cpu")
    files = save_format(name, model, ticket.architecture, out, representation.converted)
    error = _reload_error(out, ticket, plugins, "cuda" if name == "2:4" else "cpu")
    if not error <= representation.tolerance:
        for path in files:
            path.unlink(missing_ok=True)
        raise LthError(f"{out}: the {name} export reloaded to outputs that differ from the "
                       f"ticket's by {error:.2e}; it was removed")
    return FormatExport(name, files, chosen.measurement, error, ticket.inputs_note)


def _reload_error(out: Path, ticket: StoredTicket, plugins: Plugins, device: str) -> float:
    reloaded = load_exported(out, plugins, device)
    x = ticket.inputs
    with torch.inference_mode():
        reference = ticket.model.to("cpu")(x)
        dtype = next((p.dtype for p in reloaded.parameters()), torch.float32)
        output = reloaded(x.to(device, dtype if dtype.is_floating_point else torch.float32))
    return error_of(output.cpu(), reference)
