"""Measuring what a ticket buys: latency, memory and size of each of its formats.

Every representation is first run on real inputs and compared with the masked dense
network; one whose outputs differ beyond its tolerance is reported ``wrong`` and never
timed, so a fast wrong kernel cannot look like a win. Timing then follows the rules of
honest micro-benchmarks on a shared machine: a fixed thread count, warm-up calls, each
sample long enough to dwarf the clock (calls repeated until it lasts ``sample_seconds``),
rounds interleaved across formats in a new (seeded) order each round, so that load
drifts hit all of them alike, and the median over rounds. Both the wall time and, on the
CPU with one thread, the CPU time of the calling thread are recorded; speed-ups compare
the CPU time there, which other processes' load does not inflate (on a busy shared
machine the wall time of one forward varied tenfold between samples, its CPU time by
less than twofold), and the wall time elsewhere. Memory is the bytes of weights
and of sparse indices, the peak memory a forward allocates and the size on disk
(``footprint``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..pruning.masks import Mask
from .footprint import disk_bytes, model_bytes, peak_forward_bytes
from .formats import Format, FormatRequest, Representation
from .machine import describe_machine

OK, WRONG, FAILED, UNAVAILABLE = "ok", "wrong", "failed", "unavailable"


@dataclass
class MeasureSettings:
    """How to measure: batch sizes, threads, device, rounds and warm-up."""

    batches: Sequence[int] = (1, 64)
    threads: int = 1
    device: str = "cpu"
    rounds: int = 7
    warmup: int = 3
    sample_seconds: float = 0.02  # each timed sample repeats calls for at least this long


@dataclass
class FormatResult:
    """One format of one ticket: its status, bytes, and latency per batch size."""

    format: str
    status: str  # ok, wrong (outputs differ), failed (raised), unavailable (does not apply)
    reason: str = ""
    max_error: float | None = None  # largest |output - dense output| / largest |dense output|
    weight_bytes: int | None = None  # stored values (and dense parameters and buffers)
    index_bytes: int | None = None  # sparse indices and metadata
    disk_bytes: int | None = None  # its state dict saved with torch.save
    peak_bytes: dict[int, int] = field(default_factory=dict)  # per batch: forward's peak
    seconds: dict[int, float] = field(default_factory=dict)  # per batch: median wall latency
    # per batch: median CPU time of the calling thread per forward (CPU, one thread only)
    cpu_seconds: dict[int, float] = field(default_factory=dict)
    converted: list[str] = field(default_factory=list)


@dataclass
class Measurement:
    """Every format of one ticket, and the machine and settings they were measured with."""

    results: list[FormatResult]
    machine: dict[str, str]
    batches: list[int]

    def result(self, name: str) -> FormatResult | None:
        """The result of one format, if it was measured."""
        return next((r for r in self.results if r.format == name), None)

    @property
    def clock(self) -> str:
        """What speed-ups compare: ``cpu`` (the thread's CPU time, measured on the CPU with
        one thread: other processes' load does not inflate it) or ``wall``."""
        timed = [r for r in self.results if r.seconds]
        return "cpu" if timed and all(r.cpu_seconds for r in timed) else "wall"

    def cost(self, name: str, batch: int) -> float | None:
        """Seconds per forward of one format on the measurement's clock."""
        result = self.result(name)
        if result is None:
            return None
        return (result.cpu_seconds if self.clock == "cpu" else result.seconds).get(batch)

    def speedup(self, name: str, batch: int) -> float | None:
        """Dense cost over this format's cost at one batch size (see ``clock``)."""
        base, this = self.cost("dense", batch), self.cost(name, batch)
        return None if base is None or this is None else base / this

    def best(self, batch: int) -> str | None:
        """The fastest correct format at one batch size."""
        timed = [r.format for r in self.results if self.cost(r.format, batch) is not None]
        return min(timed, key=lambda name: self.cost(name, batch)) if timed else None

    def metrics(self) -> dict[str, float]:
        """Flat metrics: ``<format>/b<batch>/latency_ms`` and ``/speedup`` per timed batch,
        ``<format>/weight_bytes`` (and index, disk bytes), ``<format>/wrong`` = 1 for a
        format whose outputs did not match (the format's name with ``:`` as ``-``)."""
        metrics: dict[str, float] = {}
        for r in self.results:
            key = metric_key(r.format)
            if r.status == WRONG:
                metrics[f"{key}/wrong"] = 1.0
            if r.status != OK:
                continue
            for label in ("weight_bytes", "index_bytes", "disk_bytes"):
                if getattr(r, label) is not None:
                    metrics[f"{key}/{label}"] = float(getattr(r, label))
            for batch, seconds in r.seconds.items():
                metrics[f"{key}/b{batch}/latency_ms"] = seconds * 1e3
                if batch in r.cpu_seconds:
                    metrics[f"{key}/b{batch}/cpu_ms"] = r.cpu_seconds[batch] * 1e3
                metrics[f"{key}/b{batch}/speedup"] = self.speedup(r.format, batch) or 0.0
                if batch in r.peak_bytes:
                    metrics[f"{key}/b{batch}/peak_bytes"] = float(r.peak_bytes[batch])
        return metrics

    def rows(self) -> list[dict]:
        """One row per (format, batch size): what the analyzer's table and reports show."""
        rows = []
        for r in self.results:
            for batch in self.batches if r.status == OK else [None]:
                seconds = r.seconds.get(batch) if batch is not None else None
                rows.append({
                    "format": r.format, "batch": batch, "status": r.status, "reason": r.reason,
                    "latency_ms": None if seconds is None else seconds * 1e3,
                    "cpu_ms": (r.cpu_seconds[batch] * 1e3 if batch in r.cpu_seconds
                               else None),
                    "speedup": self.speedup(r.format, batch) if batch is not None else None,
                    "weight_bytes": r.weight_bytes, "index_bytes": r.index_bytes,
                    "disk_bytes": r.disk_bytes, "peak_bytes": r.peak_bytes.get(batch),
                    "max_error": r.max_error,
                    "best": batch is not None and self.best(batch) == r.format})
        return rows


def metric_key(name: str) -> str:
    """A format's name as it appears in metric names (MLflow refuses ``:``)."""
    return name.replace(":", "-")


def build_formats(registry: Any, names: Sequence[str] | None = None) -> dict[str, Format]:
    """The named formats (every registered one when None) built from a plugin registry,
    ``dense`` first: it is the baseline."""
    chosen = list(names) if names is not None else registry.names("format")
    ordered = ["dense", *[n for n in chosen if n != "dense"]]
    return {name: registry.build("format", name, {}) for name in ordered}


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest absolute difference, relative to the largest magnitude of the reference."""
    scale = float(reference.abs().max()) or 1.0
    return float((output.float() - reference.float()).abs().max()) / scale


def _timed(forward: Callable[[], object], calls: int,
           device: torch.device) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the calling thread, per call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        forward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls, (time.thread_time() - cpu) / calls


def time_forwards(forwards: dict[str, Callable[[], object]], settings: MeasureSettings,
                  device: torch.device) -> dict[str, tuple[float, float | None]]:
    """Median wall seconds per call of each forward, and median CPU seconds of this thread
    (on the CPU with one thread, where this thread does all the work; else None):
    warmed up, calibrated, rounds interleaved in a new order each round."""
    calls = {}
    for name, forward in forwards.items():
        for _ in range(settings.warmup):
            forward()
        # The fastest of a few single calls: one call slowed by a preemption must not leave
        # the format with samples of two or three calls, whose first (cache-cold, after the
        # other formats ran) would then dominate its median.
        single = min(_timed(forward, 1, device)[0] for _ in range(5))
        calls[name] = max(1, min(10_000, int(settings.sample_seconds / max(single, 1e-7))))
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in forwards}
    order = random.Random(0)  # a fixed seed: the same schedule every time
    names = list(forwards)
    for _ in range(settings.rounds):
        # A new order every round: a burst of load from other processes then falls on
        # different formats in different rounds instead of always on the same neighbours.
        order.shuffle(names)
        for name in names:
            samples[name].append(_timed(forwards[name], calls[name], device))
    thread_clock = device.type == "cpu" and settings.threads == 1
    return {name: (statistics.median(w for w, _ in values),
                   statistics.median(c for _, c in values) if thread_clock else None)
            for name, values in samples.items()}


def measure_formats(model: nn.Module, mask: Mask, inputs: torch.Tensor,
                    formats: dict[str, Format],
                    settings: MeasureSettings | None = None) -> Measurement:
    """Build each format of a ticket, check it against the masked dense network on
    ``inputs`` (real examples, at least the largest batch), then time and size the
    correct ones. ``formats`` maps names to builders and must include ``dense``."""
    settings = settings or MeasureSettings()
    device = torch.device(settings.device)
    if "dense" not in formats:
        raise ValueError("the formats measured must include 'dense', the baseline")
    if len(inputs) < max(settings.batches):
        inputs = inputs.repeat((max(settings.batches) + len(inputs) - 1) // len(inputs),
                               *([1] * (inputs.dim() - 1)))
    threads = torch.get_num_threads()
    # TF32 (on by default for CUDA convolutions) would make the dense reference differ
    # from float32 sparse kernels by about 1e-3: every format runs in true float32.
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.set_num_threads(settings.threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            return _measure(model, mask, inputs, formats, settings, device)
    finally:
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def _measure(model: nn.Module, mask: Mask, inputs: torch.Tensor, formats: dict[str, Format],
             settings: MeasureSettings, device: torch.device) -> Measurement:
    model = model.to(device).eval()
    mask = mask.to(device)
    mask.apply_(model)
    request = FormatRequest(model, mask, device)
    batches = {b: inputs[:b].to(device) for b in settings.batches}
    reference = {b: model(x).float() for b, x in batches.items()}
    results: list[FormatResult] = []
    forwards: dict[str, dict[int, Callable[[], object]]] = {}
    for name, build in formats.items():
        try:
            built: Representation = build(request)
        except Exception as exc:  # a plugin's builder: report it, measure the others
            results.append(FormatResult(name, FAILED, f"{type(exc).__name__}: {exc}"))
            continue
        if built.model is None:
            results.append(FormatResult(name, UNAVAILABLE, built.reason))
            continue
        result = _check(name, built, batches, reference)
        results.append(result)
        if result.status == OK:
            weights, indices = model_bytes(built.model)
            result.weight_bytes, result.index_bytes = weights, indices
            result.disk_bytes = disk_bytes(built.model)
            forwards[name] = {b: _forward(built, x) for b, x in batches.items()}
            for b, forward in forwards[name].items():
                peak = peak_forward_bytes(forward, device)
                if peak is not None:
                    result.peak_bytes[b] = peak
    for b in settings.batches:
        medians = time_forwards({n: f[b] for n, f in forwards.items()}, settings, device)
        for result in results:
            if result.format in medians:
                wall, cpu = medians[result.format]
                result.seconds[b] = wall
                if cpu is not None:
                    result.cpu_seconds[b] = cpu
    measured = Measurement(results, describe_machine(device, settings.threads),
                           list(settings.batches))
    measured.machine["clock"] = ("thread CPU time" if measured.clock == "cpu"
                                 else "wall time")
    return measured


def _forward(built: Representation, x: torch.Tensor) -> Callable[[], object]:
    x = x.to(built.input_dtype)
    model = built.model
    return lambda: model(x)


def _check(name: str, built: Representation, batches: dict[int, torch.Tensor],
           reference: dict[int, torch.Tensor]) -> FormatResult:
    """Outputs of every batch size against the dense network's, before any timing."""
    worst = 0.0
    for b, x in batches.items():
        try:
            output = built.model(x.to(built.input_dtype))
        except Exception as exc:  # a kernel that refuses this batch or shape
            return FormatResult(name, FAILED, f"batch {b}: {str(exc).splitlines()[0]}")
        if output.shape != reference[b].shape:
            return FormatResult(name, WRONG, f"batch {b}: output shape {tuple(output.shape)}, "
                                f"dense {tuple(reference[b].shape)}")
        worst = max(worst, relative_error(output, reference[b]))
    if not worst <= built.tolerance:  # NaN is wrong too
        return FormatResult(name, WRONG, f"outputs differ from dense by {worst:.2e} of their "
                            f"largest magnitude (tolerance {built.tolerance:.0e})",
                            max_error=worst, converted=built.converted)
    return FormatResult(name, OK, built.reason, max_error=worst, converted=built.converted)
