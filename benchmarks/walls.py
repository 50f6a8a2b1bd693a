#!/usr/bin/env python
"""Wall time of whole `lth-suite run`s: the thread policy, workers, and where time goes.

    python benchmarks/walls.py [--rounds 3] [--parts threads,workers] [--set KEY=VALUE ...]
        [--out benchmarks/RESULTS.md]

- threads: the quickstart with torch's old default (one thread per core, OpenMP's default
  spinning), with ``training.threads: auto`` (the default: one thread here, idle threads
  sleep) and with ``OMP_NUM_THREADS=1``; each alone, and beside two busy processes (two
  Python loops spinning on a core each, started before the run and stopped after it).
- workers: through the ``local`` launcher in process (``workers: 1``), with 2 workers, and
  with one per core (when there are more than 2), on two workloads: the quickstart with
  2 replicates and both controls (32 trainings of 810 iterations), and the LeNet-300-100
  preset shortened (2 replicates, 3 levels, both controls: 20 trainings of 1000
  iterations, on the MNIST test set given by ``--mnist``, split 7000/1000/2000).
- logging overhead: the split that every run prints (training steps, evaluation, logging
  and checkpoints), from the default runs.

Every variant runs once per round, in turn (A B C A B C ...), so each sees the same drift
of a shared machine; figures are medians over rounds. Each run is a fresh process with
its own SQLite store in a temporary folder; ``--set`` overrides go to every run (to
shorten it on a slow machine). Writes the "walls" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUICKSTART = ROOT / "specs" / "quickstart.yaml"
LENET = ROOT / "specs" / "lenet300_mnist.yaml"
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
EXPERIMENT = re.compile(r"test accuracy at the early-stop iteration, % \(([\d.]+) s\)")
SPLIT = re.compile(r"time: training steps ([\d.]+) s, evaluation ([\d.]+) s, "
                   r"logging and checkpoints ([\d.]+) s")


@dataclass
class Variant:
    """One way of running: its label, extra CLI arguments, environment and load."""

    part: str
    label: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    busy: int = 0  # spinning processes beside the run
    spec: Path = QUICKSTART
    workload: str = "quickstart"
    walls: list[float] = field(default_factory=list)
    timed_out: int = 0  # runs stopped at --timeout (their wall counts as the timeout)
    splits: list[tuple[float, float, float]] = field(default_factory=list)
    experiments: list[float] = field(default_factory=list)  # the levels' wall, as printed


def cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workloads(mnist: Path | None) -> list[tuple[str, Path, list[str]]]:
    """The workers part's workloads: (name, spec, its --set arguments); LeNet needs MNIST."""
    found = [("quickstart, 2 replicates", QUICKSTART, ["--set", "experiment.replicates=2"])]
    if mnist is not None:
        sys.path.insert(0, str(HERE))
        from workloads import CACHE, mnist_arrays

        if mnist_arrays(mnist) is not None:  # cached as an npz the npz dataset reads
            data = f"{{name: npz, path: {CACHE / 'mnist_test.npz'}, validation: 1000}}"
            found.append(("LeNet preset shortened, 2 replicates", LENET, [
                "--set", f"dataset={data}", "--set", "experiment.replicates=2",
                "--set", "pruning.levels=3", "--set", "training.duration=1000it"]))
    return found


def variants(parts: list[str], loads: list[int], mnist: Path | None = None) -> list[Variant]:
    """Every variant of the chosen parts, the thread policy under each load."""
    found: list[Variant] = []
    old_default = {"OMP_WAIT_POLICY": ""}  # empty: OpenMP's own default (spinning), as before
    if "threads" in parts:
        for busy in loads:
            beside = f", beside {busy} busy processes" if busy else ""
            found += [
                Variant("threads", f"torch's default ({cores()} threads, spinning){beside}",
                        ["--set", f"training.threads={cores()}"], old_default, busy),
                Variant("threads", f"threads: auto (default){beside}", [], {}, busy),
                Variant("threads", f"OMP_NUM_THREADS=1{beside}", [], {"OMP_NUM_THREADS": "1"},
                        busy),
            ]
    if "workers" in parts:
        for workload, spec, sets in workloads(mnist):
            counts = [1, 2] + ([cores()] if cores() > 2 else [])
            found += [Variant("workers", f"{workload}: workers: {count}" + (
                " (in process)" if count == 1 else " (auto)" if count == cores() > 2 else ""),
                [*sets, "--set", f"launcher.workers={count}"], spec=spec, workload=workload)
                for count in counts]
    return found


def run_once(variant: Variant, overrides: list[str], timeout: float) -> None:
    """One `lth-suite run` of the quickstart; its wall time and time split."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(variant.env)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(variant.busy)]
    try:
        with tempfile.TemporaryDirectory() as folder:
            command = [sys.executable, "-m", "lth_suite", "run", str(variant.spec),
                       "--set", "report.enabled=false", "--tracking-uri",
                       f"sqlite:///{folder}/mlflow.db",
                       *[a for o in overrides for a in ("--set", o)], *variant.args]
            started = time.perf_counter()
            try:
                done = subprocess.run(command, cwd=folder, env=env, capture_output=True,
                                      text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                variant.walls.append(timeout)
                variant.timed_out += 1
                print(f"  {variant.label}: stopped at {timeout:.0f} s", file=sys.stderr, flush=True)
                return
            wall = time.perf_counter() - started
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if done.returncode != 0:
        raise SystemExit(f"{variant.label}: exit {done.returncode}\n{done.stderr[-2000:]}")
    variant.walls.append(wall)
    found = EXPERIMENT.search(done.stdout + done.stderr)
    if found:
        variant.experiments.append(float(found.group(1)))
    match = SPLIT.search(done.stdout + done.stderr)
    if match:
        variant.splits.append(tuple(float(g) for g in match.groups()))  # type: ignore[arg-type]
    print(f"  {variant.label}: {wall:.1f} s", file=sys.stderr, flush=True)


def table(found: list[Variant], part: str, reference: str, speedup: bool = False) -> str:
    """A markdown table of one part's medians, each against the reference variant: as the
    ratio of walls, or (``speedup``) as how many times faster than the reference."""
    rows = [v for v in found if v.part == part]
    base = statistics.median(next(v for v in rows if v.label == reference).walls)
    header = ("speed-up over " if speedup else "ratio to ") + reference
    levels = speedup and all(v.experiments for v in rows)  # workers: the levels' part too
    lines = [f"| run | median wall s | runs (s) | {header} |"
             + (" levels s (median) | levels speed-up |" if levels else ""),
             "| --- | ---: | --- | ---: |" + (" ---: | ---: |" if levels else "")]
    reference_levels = statistics.median(rows[0].experiments) if levels else 0.0
    for v in rows:
        median = statistics.median(v.walls)
        each = ", ".join(f"{w:.1f}" for w in v.walls)
        more = f" ({v.timed_out} stopped at the timeout)" if v.timed_out else ""
        ratio = base / median if speedup else median / base
        line = f"| {v.label} | {median:.1f}{more} | {each} | {ratio:.2f}x |"
        if levels:
            inner = statistics.median(v.experiments)
            line += f" {inner:.1f} | {reference_levels / inner:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def split_line(found: list[Variant]) -> str:
    """The median time split of the default quiet runs."""
    default = next((v for v in found if v.label == "threads: auto (default)"), None)
    if default is None or not default.splits:
        return ""
    steps, evaluation, logging = (statistics.median(s[i] for s in default.splits)
                                  for i in range(3))
    return (f"Time split of the default quickstart (median of {len(default.splits)}): training "
            f"steps {steps:.1f} s, evaluation {evaluation:.1f} s ({evaluation / steps:+.0%}), "
            f"logging and checkpoints {logging:.1f} s ({logging / steps:+.0%}).")


def write(found: list[Variant], out: Path, rounds: int, note: str) -> str:
    """The walls section, merged into ``out``."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    parts = ["<!-- bench:walls -->", "## Whole runs: thread policy and workers", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cores()} cores; "
             f"load average (1 min) {load:.2f} at the end; {rounds} rounds, interleaved",
             f"- command: `python benchmarks/walls.py {' '.join(sys.argv[1:])}`"]
    if note:
        parts.append(f"- note: {note}")
    if any(v.part == "threads" for v in found):
        parts += ["", table(found, "threads", "threads: auto (default)")]
    for workload in dict.fromkeys(v.workload for v in found if v.part == "workers"):
        rows = [v for v in found if v.workload == workload]
        parts += ["", table(rows, "workers", rows[0].label, speedup=True)]
    if split_line(found):
        parts += ["", split_line(found)]
    parts.append("<!-- /bench:walls -->")
    section = "\n".join(parts)
    text = out.read_text() if out.exists() else "# lth-suite benchmark\n"
    marked = re.compile(r"<!-- bench:walls -->.*?<!-- /bench:walls -->", re.S)
    text = marked.sub(lambda _: section, text) if marked.search(text) else \
        text.rstrip("\n") + "\n\n" + section + "\n"
    out.write_text(text)
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="threads,workers")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", default="")
    parser.add_argument("--busy", default="0,2",
                        help="busy processes beside the thread-policy runs, comma-separated")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds after which a run is stopped and counted as that long")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                        help="folder with the MNIST test set (t10k-*.gz) for the LeNet workload")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a spec override for every run")
    args = parser.parse_args(argv)
    found = variants([p.strip() for p in args.parts.split(",")],
                     [int(b) for b in args.busy.split(",")], args.mnist)
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for variant in found:
            run_once(variant, args.overrides, args.timeout)
    print(write(found, args.out, args.rounds, args.note))


if __name__ == "__main__":
    main()
