"""What a ticket buys: forward latency and bytes of LeNet-300-100 and Conv-4 in every
format lth-suite builds (dense, csr, bsr, shrunk; 2:4 on CUDA), at 100/20/3.5/1% of
weights, batch 1 and 64, measured by ``lth_suite.analysis.inference`` (outputs checked
against the masked dense network first; warm-up, interleaved rounds, medians, one thread).

    python benchmarks/formats.py                      # CPU; writes its section of RESULTS.md
    python benchmarks/formats.py --device cuda        # the CUDA rows (benchmarks/gpu.sh)

Masks are random, each prunable layer keeping the density's share of its weights (the
speed of a sparse kernel depends on the shapes and the density, not on the values);
inputs are MNIST test images for LeNet (``--mnist``; random where absent) and random
3x32x32 images for Conv-4.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NETWORKS = {"lenet": ("LeNet-300-100", "mlp", {"hidden": [300, 100]}, "mnist"),
            "conv4": ("Conv-4", "conv", {"depth": 4}, "cifar")}
DENSITIES = (1.0, 0.2, 0.035, 0.01)
MARK = "formats"


def measure_network(key: str, device: str, batches: list[int], rounds: int, warmup: int,
                    mnist: Path):
    """Rows (density, batch, format, wall ms, CPU ms, speed-up, KiB, status) of a network."""
    import torch
    from workloads import Case, build, mask_of, raw_data, tensors

    from lth_suite.analysis.inference import MeasureSettings, build_formats, measure_formats
    from lth_suite.plugins.manager import load_plugins

    label, arch, params, data = NETWORKS[key]
    case = Case(label, arch, params, 60, data, {}, {"cpu": 1.0, "cuda": 1.0})
    x_raw, _, described = raw_data(data, mnist)
    inputs = tensors(x_raw[:max(batches)], data)
    registry = load_plugins(installed=False, warn=False).registry
    formats = build_formats(registry)
    settings = MeasureSettings(batches, 1, device, rounds, warmup)
    rows = []
    cases = [(f"{100 * d:g}", d) for d in DENSITIES]
    if device == "cuda":  # sparse tensor cores need the 2:4 pattern: one 2:4 ticket too
        cases.append(("50 (2:4 linear)", "2:4"))
    for shown, density in cases:
        model, _ = build(case, torch.device("cpu"))
        mask = two_four_mask(model) if density == "2:4" else mask_of(model, density)
        measured = measure_formats(model, mask, inputs, formats, settings)
        for r in measured.results:
            for batch in batches if r.seconds else [None]:
                rows.append((label, shown, batch, r.format, r.seconds.get(batch),
                             r.cpu_seconds.get(batch), measured.speedup(r.format, batch)
                             if batch else None,
                             None if r.weight_bytes is None
                             else (r.weight_bytes + r.index_bytes) / 1024,
                             r.status if r.status != "unavailable" else f"n/a: {r.reason}"))
        print(f"{label} at {shown}%: done", file=sys.stderr)
    return rows, described, measured.machine


def two_four_mask(model):
    """Every linear weight keeping its 2 largest of each 4 consecutive inputs; convs dense."""
    from lth_suite.pruning import nm
    from lth_suite.pruning.masks import Mask

    weights = dict(model.named_parameters())
    return Mask({name: nm.top_n(weights[name].abs(), keep, 2, 4)
                 if keep.dim() == 2 and nm.fits(keep.shape, 4) else keep
                 for name, keep in Mask.dense(model).items()})


def table(rows) -> str:
    """The Markdown table of every row."""
    lines = ["| network | weights (%) | batch | format | wall (ms) | CPU (ms) | speed-up vs "
             "dense | weights + indices (KiB) | status |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for label, percent, batch, fmt, seconds, cpu, speedup, kib, status in rows:
        lines.append(f"| {label} | {percent} | {batch if batch else '–'} | {fmt} | "
                     f"{'–' if seconds is None else f'{seconds * 1e3:.3f}'} | "
                     f"{'–' if cpu is None else f'{cpu * 1e3:.3f}'} | "
                     f"{'–' if speedup is None else f'{speedup:.2f}x'} | "
                     f"{'–' if kib is None else f'{kib:,.1f}'} | {status} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure, print and write the section of RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--networks", default="lenet,conv4")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--mnist", type=Path, default=HERE.parent.parent / "shared" / "data"
                        / "mnist")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/formats.py: no CUDA device here: nothing measured")
        return
    load = os.getloadavg()[0]
    batches = [int(b) for b in args.batches.split(",")]
    rows, inputs, machine = [], [], {}
    for key in args.networks.split(","):
        found, described, machine = measure_network(key, args.device, batches, args.rounds,
                                                    args.warmup, args.mnist)
        rows += found
        inputs.append(f"{NETWORKS[key][0]}: {described}")
    text = table(rows)
    print(text)
    command = "python benchmarks/formats.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    where = machine.get("gpu") or machine.get("cpu")
    section = "\n".join([
        f"## What a ticket buys: formats ({args.device})", "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {where}, {os.cpu_count()} cores, 1 torch thread; torch "
        f"{torch.__version__}, Python {platform.python_version()}",
        f"- load average (1 min) {load:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        "(a shared machine: compare ratios within this run, not with other runs)",
        f"- command: `{command.strip()}`", f"- inputs: {'; '.join(inputs)}",
        *(f"- note: {note}" for note in args.note), "", text, "",
        "Wall and CPU: medians over interleaved rounds (a new order each round) of the "
        "forward of one batch, after warm-up, each format's outputs first checked against "
        "the masked dense network; CPU is the calling thread's CPU time (on the CPU with one "
        "thread), which other processes' load does not inflate. Speed-up = dense / format "
        "on CPU time where measured, else on wall time. Weights + indices: values of every parameter and "
        "buffer plus the sparse indices. Random masks (each layer at the density): `shrunk` "
        "removes the units left without incoming or outgoing weights, which random masks "
        "leave in numbers only at 1% (a LeNet hidden unit then keeps one outgoing weight "
        "on average).",
    ])
    kind = f"{MARK}_{args.device}"  # a section key: letters, digits and _ only
    write_section(args.out, kind, section)
    print(f"wrote the {kind} section of {args.out}", file=sys.stderr)


def write_section(path: Path, kind: str, section: str) -> None:
    """Replace this section of RESULTS.md in place (or append it), leaving the others
    where they are."""
    import re

    from results_file import merge_section

    earlier = path.read_text() if path.is_file() else ""
    block = f"<!-- bench:{kind} -->\n{section.rstrip()}\n<!-- /bench:{kind} -->"
    found = re.compile(rf"<!-- bench:{kind} -->\n.*?<!-- /bench:{kind} -->", re.S)
    if found.search(earlier):
        text = found.sub(lambda _: block, earlier)
    elif earlier:
        text = earlier.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = merge_section("", kind, section)
    path.write_text(text)


if __name__ == "__main__":
    main()
