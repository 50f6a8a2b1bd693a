""""What this ticket buys here": the ``inference`` analyzer's (or ``bench``'s) metrics as
one row per (level, batch size), for ``summary.md`` and the terminal alike.

The metrics are those of ``Measurement.metrics()``: ``<format>/b<batch>/latency_ms``,
``.../speedup``, ``<format>/weight_bytes``, ``<format>/index_bytes``, ``<format>/wrong``.
No torch here: the CLI imports it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .numbers import weights_text

Series = dict[str, dict[int, float]]  # metric -> level -> value
TIMED = re.compile(r"^(?P<format>.+)/b(?P<batch>\d+)/latency_ms$")
BASELINE = "dense"
# "Pays" means at least this speed-up: on a busy shared machine (load 8 on 2 cores) the
# dense network timed against an identical copy of itself read up to 1.2x apart.
PAYS = 1.2


@dataclass
class BuysRow:
    """One level at one batch size: dense latency, each format's speed-up, bytes."""

    level: int
    percent: float  # weights remaining
    batch: int
    dense_ms: float  # median wall latency
    dense_cpu_ms: float | None  # median CPU time of the thread (CPU, one thread)
    speedups: dict[str, float | None]  # None: not timed (wrong, failed or unavailable)
    best: str
    dense_bytes: float | None
    smallest: tuple[str, float] | None  # format with the fewest weight + index bytes
    accuracy: float | None = None  # ticket test accuracy at early stop, percent
    wrong: list[str] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)  # a forward's peak bytes, by format


def formats_in(metrics: Series) -> list[str]:
    """The formats the metrics hold, dense first, then in name order."""
    found = {m.group("format") for key in metrics if (m := TIMED.match(key))}
    found |= {key.split("/")[0] for key in metrics if key.endswith("/wrong")}
    return sorted(found, key=lambda name: (name != BASELINE, name))


def buys_rows(metrics: Series, percents: dict[int, float],
              accuracy: dict[int, float] | None = None) -> list[BuysRow]:
    """Rows for every level and batch size that has a dense latency; speed-ups as the
    measurement logged them (on its clock: see ``Measurement.clock``)."""
    formats = formats_in(metrics)
    batches = sorted({int(m.group("batch")) for key in metrics if (m := TIMED.match(key))})
    rows = []
    for level in sorted(percents):
        for batch in batches:
            dense = metrics.get(f"{BASELINE}/b{batch}/latency_ms", {}).get(level)
            if dense is None:
                continue
            speedups = {f: metrics.get(f"{f}/b{batch}/speedup", {}).get(level)
                        for f in formats if f != BASELINE}
            timed = {f: s for f, s in speedups.items() if s is not None}
            # Only a speed-up beyond the noise makes a format better than dense.
            best = max(timed, key=timed.get) if timed and max(timed.values()) >= PAYS \
                else BASELINE
            sizes = {f: metrics[f"{f}/weight_bytes"][level]
                     + metrics.get(f"{f}/index_bytes", {}).get(level, 0.0)
                     for f in formats if level in metrics.get(f"{f}/weight_bytes", {})}
            rows.append(BuysRow(
                level, percents[level], batch, dense,
                metrics.get(f"{BASELINE}/b{batch}/cpu_ms", {}).get(level), speedups, best,
                sizes.get(BASELINE), min(sizes.items(), key=lambda kv: kv[1]) if sizes else None,
                (accuracy or {}).get(level),
                [f for f in formats if metrics.get(f"{f}/wrong", {}).get(level)],
                {f: peak for f in formats
                 if (peak := metrics.get(f"{f}/b{batch}/peak_bytes", {}).get(level)) is not None}))
    return rows


def where_it_pays(rows: list[BuysRow]) -> list[str]:
    """Per format and batch size, the densest level from which every sparser level is at
    least ``PAYS`` times as fast as dense: "csr pays from 3.52% of weights at batch 64"."""
    lines = []
    formats = list(dict.fromkeys(f for row in rows for f in row.speedups))
    for batch in sorted({row.batch for row in rows}):
        at_batch = sorted((r for r in rows if r.batch == batch), key=lambda r: -r.percent)
        for name in formats:
            pays_from = None
            for row in reversed(at_batch):  # sparsest first
                speedup = row.speedups.get(name)
                if speedup is None or speedup < PAYS:
                    break
                pays_from = row
            if pays_from is None:
                lines.append(f"batch {batch}: `{name}` never pays here (speed-up under "
                             f"{PAYS}x at the sparsest level)")
            else:
                lines.append(f"batch {batch}: `{name}` pays ({PAYS}x or more) from "
                             f"{weights_text(pays_from.percent)}% of weights remaining "
                             f"({pays_from.speedups[name]:.2f}x there)")
    return lines


def machine_line(machine: dict[str, str]) -> str:
    """One line naming the machine of a measurement (``describe_machine``'s fields)."""
    if not machine:
        return "this machine (not recorded)"
    where = machine.get("gpu") or machine.get("cpu", "?")
    clock = f", speed-ups on {machine['clock']}" if "clock" in machine else ""
    return (f"{where}, {machine.get('threads', '?')} thread(s), torch "
            f"{machine.get('torch', '?')}, device {machine.get('device', 'cpu')}{clock}")


def _kb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:,.1f}"


def cells(row: BuysRow) -> list[str]:
    """A row as text cells, in the order of ``header``."""
    speed = [("wrong" if f in row.wrong else "–") if s is None else f"{s:.2f}x"
             for f, s in row.speedups.items()]
    smallest = "–" if row.smallest is None else f"{_kb(row.smallest[1])} ({row.smallest[0]})"
    cpu = "" if row.dense_cpu_ms is None else f" / {row.dense_cpu_ms:.3f}"
    peak = _kb(row.peaks.get(BASELINE))
    if row.best != BASELINE:
        peak += f" / {_kb(row.peaks.get(row.best))}"
    return [str(row.level), weights_text(row.percent),
            "–" if row.accuracy is None else f"{row.accuracy:.2f}", str(row.batch),
            f"{row.dense_ms:.3f}{cpu}", *speed, row.best, _kb(row.dense_bytes), smallest, peak]


def header(rows: list[BuysRow]) -> list[str]:
    """Column names: level, weights, accuracy, batch, dense latency, each format's
    speed-up, the best format (the fastest at ``PAYS`` times dense or more, else dense),
    the bytes of dense and of the smallest format, and the peak memory one forward adds
    (dense, then the best format's where it is not dense)."""
    formats = list(rows[0].speedups) if rows else []
    timed = "dense wall / CPU (ms)" if any(r.dense_cpu_ms is not None for r in rows) \
        else "dense (ms)"
    return ["level", "weights remaining (%)", "ticket accuracy (%)", "batch", timed,
            *[f"{f} speed-up" for f in formats], "best format", "dense weights (KiB)",
            "smallest weights+indices (KiB)", "forward peak, dense / best (KiB)"]


def buys_markdown(rows: list[BuysRow], machine: str) -> list[str]:
    """The Markdown section: the table, where each format pays, and the machine."""
    if not rows:
        return []
    head = header(rows)
    lines = ["## What this ticket buys here", "",
             f"Median forward time of the first replicate's ticket, measured on {machine}; "
             "speed-up is dense time over the format's (above 1: faster), on the thread's CPU "
             "time when measured on the CPU with one thread (other processes' load inflates "
             f"wall time, not CPU time), else on wall time; the best format is the fastest at "
             f"{PAYS}x dense or more, else dense. Outputs of every "
             "format were compared with the masked dense network's before timing; `wrong` "
             "marks one that did not match and was not timed.", "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    lines += ["", *[f"- {line}" for line in where_it_pays(rows)]]
    return lines
