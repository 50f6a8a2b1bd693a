"""The benchmark's table, printed and written to RESULTS.md with the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Results:
    """What one benchmark run measured, and when and where it started."""

    device: str
    rows: list = field(default_factory=list)  # (case, rates, memory)
    population: list = field(default_factory=list)  # (k, rates, memory)
    options: list = field(default_factory=list)  # (case, rates by variant)
    counts: list[str] = field(default_factory=list)  # iterations per timed run, described
    started: float = field(default_factory=time.time)
    load_before: float = field(default_factory=lambda: os.getloadavg()[0])

    def processes(self) -> list[dict]:
        """Every measuring process's answer."""
        return ([m for _, rates, memory in self.rows + self.population
                 for m in (rates, *memory.values())] + [rates for _, rates in self.options])


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    """A rate with as many digits as its size calls for."""
    if value is None:
        return "-"
    if digits == 0 and value < 10:
        digits = 2 if value < 1 else 1
    return f"{value:,.{digits}f}{suffix}"


def network_table(results: Results) -> str:
    """lth-suite beside the peers' way and the FLOP floor; then the populations."""
    if not results.rows and not results.population:
        return ""
    memory = "peak MiB (CUDA allocated)" if results.device.startswith("cuda") else "peak RSS MiB"
    lines = [
        f"| network | batch | data | lth-suite it/s | samples/s | peers' way it/s | speed-up "
        f"| FLOP floor it/s | of floor | {memory}: lth-suite / peers |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, measured, peak in results.rows:
        rate = measured["rates"]
        lines.append(
            f"| {case.label} | {case.batch} | {measured['data']} | {fmt(rate['lth'])} | "
            f"{fmt(rate['lth'] * case.batch)} | {fmt(rate['peers'])} | "
            f"{rate['lth'] / rate['peers']:.1f}x | {fmt(rate['floor'])} | "
            f"{100 * rate['lth'] / rate['floor']:.0f}% | "
            f"{peak['lth']['peak_mib']:,.0f} / {peak['peers']['peak_mib']:,.0f} |")
    for k, measured, peak in results.population:
        rate = measured["rates"]
        lines.append(
            f"| {k} x LeNet-300-100, population | 60 | {measured['data']} | "
            f"{fmt(rate['population'])} * | {fmt(rate['population'] * 60)} | "
            f"{fmt(rate['sequential'])} * (sequential) | "
            f"{rate['population'] / rate['sequential']:.2f}x | - | - | "
            f"{peak['population']['peak_mib']:,.0f} / {peak['sequential']['peak_mib']:,.0f} |")
    return "\n".join(lines)


def options_table(results: Results) -> str:
    """Each speed option's rate and samples/s, and its ratio to fp32 on the same network."""
    if not results.options:
        return ""
    lines = ["| network | batch | option | lth-suite it/s | samples/s | vs fp32 |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for case, measured in results.options:
        rates = measured["rates"]
        for variant, rate in rates.items():
            lines.append(f"| {case.label} | {case.batch} | {variant} | {fmt(rate)} | "
                         f"{fmt(rate * case.batch)} | {rate / rates['fp32']:.2f}x |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


METHODS = [
    "- **lth-suite**: `lth_suite.training.train` on in-memory tensors with the masks "
    "(dense at level 0, else 20% of each layer's weights kept at random); iterations/s "
    "from the training's own step timer (evaluations excluded); samples/s = it/s x batch.",
    "- **peers' way**: a `DataLoader` (shuffle, {workers} worker processes) over a "
    "torchvision-style `Dataset` (uint8 arrays; per sample a PIL image, `ToTensor`, "
    "`Normalize`, as torchvision's MNIST/CIFAR classes and open_lth do), masks through "
    "`torch.nn.utils.prune.custom_from_mask`, `torch.optim.Adam`/`AdamW`/`SGD` with "
    "`foreach=False`; the same network class, data, masks and hyperparameters. "
    "Speed-up = lth-suite it/s / peers' it/s.",
    "- **FLOP floor**: the network's own conv and matmul shapes (forward, weight "
    "gradients, input gradients past the first layer) as raw ATen calls on random "
    "tensors, back to back: no autograd, optimizer, data, bias, activation, pooling, "
    "norm or loss. \"of floor\" = lth-suite it/s / floor it/s.",
    "- **population** rows (*): network-iterations/s (K x iterations / s) of K "
    "LeNet-300-100 at level 0 trained at once by `lth_suite.training.population.train_population`, "
    "beside the same K trained one after another by `train` (the peers' column); "
    "speed-up = population / sequential. `training.population: auto` uses populations "
    "on CUDA only.",
    "- **options**: lth-suite's `train` with the spec's `training.precision` (bf16 "
    "autocast; tf32 on CUDA), `training.channels_last` (conv nets only) and "
    "`training.compile`, each beside plain fp32 on the same network, interleaved in one "
    "process; \"vs fp32\" = option it/s / fp32 it/s. The compile warm-up (the compilation "
    "itself) is not timed.",
]


def write_results(results: Results, args, argv: list[str] | None, script: str) -> None:
    """Print the tables and write RESULTS.md: machine, torch, date, command, tables, method."""
    import torch

    tables = [network_table(results), options_table(results)]
    text = "\n\n".join(t for t in tables if t)
    print(text)
    elapsed, load_after = time.time() - results.started, os.getloadavg()[0]
    relative = os.path.relpath(script, Path.cwd())
    command = "python " + " ".join(shlex.quote(a) for a in [relative, *(argv or sys.argv[1:])])
    processes = results.processes()
    threads = processes[0]["threads"] if processes else torch.get_num_threads()
    imports = [m["imports_mib"] for m in processes]
    gpu = results.device.startswith("cuda")
    name = f" ({torch.cuda.get_device_name()})" if gpu else ""
    memory = ("`torch.cuda.max_memory_allocated`" if gpu else "`ru_maxrss`") + (
        " of a process running that method alone (set-up and warm-up)")
    if imports and not gpu:
        low, high = f"{min(imports):,.0f}", f"{max(imports):,.0f}"
        memory += (f"; a process that has imported torch and lth-suite holds "
                   f"{low if low == high else f'{low}-{high}'} MiB before any data")
    kind = "cuda" if gpu else "cpu"
    section = [
        f"## {kind.upper()}{name}",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores; device {results.device}{name}; "
        f"torch threads {threads}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
        f"- load average (1 min) {results.load_before:.2f} at start, {load_after:.2f} at end; "
        f"the run took {elapsed:.0f} s",
        f"- command: `{command}`",
        *(f"- note: {note}" for note in args.note),
        "",
        text,
        "",
        "How each figure is measured (all in this run):",
        "",
        *(line.format(workers=args.loader_workers) for line in METHODS),
        f"- **peak memory**: {memory}.",
        "- **timing**: one process per row times its methods in turn, round after round, "
        "so that every method sees the same drift of the machine's speed; each rate is the "
        "median of its rounds, the floor the best of them. Iterations per timed run: "
        f"{'; '.join(results.counts)}; after an untimed warm-up of a tenth as many.",
        "- optimizers: Adam (lr 1.2e-3 LeNet, 3e-4 Conv-4), SGD (momentum 0.9, lr 0.01, weight "
        "decay 1e-4: ResNet-20, VGG-19), AdamW (lr 2e-3, weight decay 0.05: the ViT); "
        "hyperparameters do not change the speed.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(merge_section(earlier, kind, "\n".join(section)))
    print(f"wrote the {kind} section of {args.out}", file=sys.stderr)


TITLE = "# lth-suite benchmark"


def merge_section(earlier: str, kind: str, section: str) -> str:
    """RESULTS.md with this device kind's section replaced (or added); the others kept.

    A GPU run does not erase the CPU figures, nor a CPU run the GPU's. Each section sits
    between ``<!-- bench:KIND -->`` markers; a file without markers is an older CPU-only
    report and is replaced.
    """
    sections: dict[str, str] = {}
    for found in re.finditer(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", earlier, re.S):
        sections[found.group(1)] = found.group(2).rstrip("\n")
    sections[kind] = section.rstrip("\n")
    parts = [f"<!-- bench:{k} -->\n{sections[k]}\n<!-- /bench:{k} -->"
             for k in sorted(sections, key=lambda k: (k != "cpu", k))]
    return TITLE + "\n\n" + "\n\n".join(parts) + "\n"
