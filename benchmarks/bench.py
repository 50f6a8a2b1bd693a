#!/usr/bin/env python
"""lth-suite's training speed beside the way peer LTH code trains, on this machine.

    python benchmarks/bench.py [--device cpu|cuda|auto] [--iterations 2000] [--repeats 5]
        [--models lenet,conv4,resnet20,vgg19,population,options] [--out benchmarks/RESULTS.md]

One table, every figure measured by this run on this machine:

- lth-suite: ``lth_suite.training.train`` on in-memory tensors with masks; iterations/s
  from its own step timer (evaluations excluded), samples/s = iterations/s x batch.
- peers' way: the common PyTorch recipe of open_lth and most LTH repositories: a
  ``DataLoader`` over a torchvision-style ``Dataset`` whose ``__getitem__`` makes a PIL
  image and applies ``ToTensor`` and ``Normalize`` per sample, masks through
  ``torch.nn.utils.prune.custom_from_mask``, plain (for-each) Adam or SGD. Same network
  class, same data, same masks, same hyperparameters (``baselines.py``).
- FLOP floor: the network's own conv and matrix-multiply shapes, forward and backward
  (weight gradients, and input gradients past the first layer), run back to back as
  raw ATen calls on random tensors: no framework, no autograd, no optimizer, no data,
  no bias, activation, pooling, norm or loss. "of floor" = lth-suite it/s / floor it/s.
- population: K LeNet-300-100 trained at once by ``lth_suite.training.population.train_population``
  against the same K trained one after another by ``train``; rates in
  network-iterations/s (K x iterations / s).
- options: the spec's speed options (``training.precision``, ``channels_last``,
  ``compile``) on LeNet-300-100, Conv-4 and VGG-19, each against plain fp32 on the same
  network in the same process (``--options`` picks them).
- peak memory: each method alone in its own process (set-up and warm-up); its
  ``ru_maxrss`` (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA).

A row's rates come from one process that times its methods in turn, round after round
(``--repeats`` rounds after a warm-up): shared virtual CPUs drift in speed, and
interleaving exposes every method to the same drift. Each rate is the median of its
rounds; the floor is the best of them (the fastest the bare math ran). LeNet trains on
the MNIST test set (10,000 images; ../shared/data/mnist, converted once to
benchmarks/data/, which git ignores) when it is there, else on random tensors of
MNIST's shape; the conv nets on random 3x32x32 images. ``--iterations`` is LeNet's
count per timed run; the peers' way runs a quarter of it on LeNet, the conv nets a
fixed fraction of it (``workloads.CASES``), each population an eighth. A full default
run takes about ten minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from baselines import floor_runner, peers_runner
from results_file import Results, write_results
from workloads import (
    CASES,
    DEFAULT_MNIST,
    HERE,
    MODEL_CHOICES,
    OPTION_CASES,
    OPTION_VARIANTS,
    POPULATION_SIZES,
    device_of,
    lth_runner,
    peak_mib,
    population_runner,
    raw_data,
    timed,
    warm_up,
)

# --- what each measuring process does -------------------------------------------------------


def _interleaved(runners: dict, device, repeats: int, scale: float = 1) -> dict[str, list[float]]:
    """Rates of every runner, timed in turn round after round, after one warm-up each.

    The machine's speed drifts (shared virtual CPUs): interleaving exposes every method
    to the same drift, so the ratios hold even when the absolute rates move.
    """
    for run, n in runners.values():
        timed(device, run, warm_up(n))
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (run, n) in runners.items():
            rates[name].append(scale * timed(device, run, n))
    return rates


def measure_rates(job: dict, device, mnist: Path) -> dict:
    """Every rate of one row (or one population size), in one process."""
    if "k" in job:
        k, n = job["k"], job["iterations"]
        runners = {"population": (population_runner(k, True, device, mnist)[0], n),
                   "sequential": (population_runner(k, False, device, mnist)[0], n)}
        described = raw_data("mnist", mnist)[2]
        scale = k  # network-iterations per iteration
    else:
        case = CASES[job["case"]]
        lth, model, info, described = lth_runner(case, device, mnist)
        runners = {"lth": (lth, job["iterations"]),
                   "peers": (peers_runner(case, device, mnist, job["workers"]),
                             job["peers_iterations"]),
                   "floor": (floor_runner(model, info, case.batch, device), job["iterations"])}
        scale = 1
    rates = _interleaved(runners, device, job["repeats"], scale)
    found = {name: max(r) if name == "floor" else statistics.median(r)
             for name, r in rates.items()}
    return {"rates": found, "runs": rates, "data": described}


def measure_options(job: dict, device, mnist: Path) -> dict:
    """lth-suite's rate on one network under each speed option, plain fp32 among them."""
    case = CASES[job["case"]]
    runners = {}
    for name in job["variants"]:
        run, _, _, described = lth_runner(case, device, mnist, OPTION_VARIANTS[name])
        runners[name] = (run, job["iterations"])
    rates = _interleaved(runners, device, job["repeats"])
    return {"rates": {name: statistics.median(r) for name, r in rates.items()}, "runs": rates,
            "data": described}


def measure_memory(job: dict, device, mnist: Path) -> dict:
    """Peak memory of one method alone: its set-up, warm-up and a few timed-size steps."""
    if "k" in job:
        run, _ = population_runner(job["k"], job["method"] == "population", device, mnist)
    elif job["method"] == "lth":
        run = lth_runner(CASES[job["case"]], device, mnist)[0]
    else:
        run = peers_runner(CASES[job["case"]], device, mnist, job["workers"])
    run(warm_up(job["iterations"]))
    return {"peak_mib": peak_mib(device)}


MEASURES = {"rates": measure_rates, "options": measure_options, "memory": measure_memory}


def worker(job: dict) -> dict:
    """One measuring process: a row's rates, the options of a network, or a peak memory."""
    import torch

    import lth_suite.training.loop  # noqa: F401 - the imports' memory, before any data

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    device = device_of(job["device"])
    imports_mib = peak_mib(torch.device("cpu"))
    measured = MEASURES[job["kind"]](job, device, Path(job["mnist"]))
    return {**measured, "imports_mib": imports_mib, "threads": torch.get_num_threads()}


# --- the driver: one process per measurement, then the table --------------------------------

def run_worker(job: dict) -> dict:
    """A measurement in a fresh process (so each peak memory is its own)."""
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"measurement {job} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_networks(names: list[str], base: dict, args) -> tuple[list, list[str]]:
    """The network rows: rates of the three methods, and the two peak memories."""
    rows, counts = [], []
    device = base["device"].split(":")[0]
    for name in names:
        case = CASES[name]
        iterations = max(3, round(args.iterations * case.share[device]))
        peers_iterations = max(3, round(iterations * case.peers_share))
        repeats = args.repeats if case.data == "mnist" else min(args.repeats, 3)
        _say(f"{case.label}: {iterations} iterations ({peers_iterations} the peers' way) x "
             f"{repeats}")
        job = {**base, "case": name, "iterations": iterations, "repeats": repeats,
               "peers_iterations": peers_iterations, "workers": args.loader_workers}
        measured = run_worker({**job, "kind": "rates"})
        memory = {method: run_worker({**job, "kind": "memory", "method": method})
                  for method in ("lth", "peers")}
        rows.append((case, measured, memory))
        counts.append(f"{case.label} {iterations} ({peers_iterations} the peers' way), "
                      f"{repeats} rounds")
    return rows, counts


def measure_populations(base: dict, args) -> tuple[list, list[str]]:
    """Population against sequential training for each K."""
    population = []
    iterations, repeats = max(3, args.iterations // 8), min(args.repeats, 2)
    for k in POPULATION_SIZES:
        _say(f"population of {k}: {iterations} iterations x {repeats}")
        job = {**base, "k": k, "iterations": iterations, "repeats": repeats}
        measured = run_worker({**job, "kind": "rates"})
        memory = {method: run_worker({**job, "kind": "memory", "method": method})
                  for method in ("population", "sequential")}
        population.append((k, measured, memory))
    return population, [f"populations {iterations} ({repeats} rounds)"]


def option_variants(selected: str, device: str) -> list[str]:
    """The variants to measure: fp32 first; tf32 only where it exists (CUDA)."""
    names = [v.strip() for v in selected.split(",") if v.strip()]
    unknown = sorted(set(names) - set(OPTION_VARIANTS))
    if unknown:
        raise SystemExit(f"unknown option variant(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(OPTION_VARIANTS)}")
    if not device.startswith("cuda"):
        names = [n for n in names if n != "tf32"]
    return ["fp32"] + [n for n in names if n != "fp32"]


def measure_option_rows(base: dict, args) -> tuple[list, list[str]]:
    """Each option against fp32, network by network."""
    variants = option_variants(args.options, base["device"])
    found, counts = [], []
    device = base["device"].split(":")[0]
    for name in OPTION_CASES:
        case = CASES[name]
        usable = [v for v in variants if name != "lenet" or "channels_last" not in v]
        iterations = max(3, round(args.iterations * case.share[device] / 2))
        repeats = min(args.repeats, 3)
        _say(f"options on {case.label}: {', '.join(usable)}, {iterations} iterations x {repeats}")
        measured = run_worker({**base, "kind": "options", "case": name, "variants": usable,
                               "iterations": iterations, "repeats": repeats})
        found.append((case, measured))
        counts.append(f"options on {case.label} {iterations} ({repeats} rounds)")
    return found, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--models", default=",".join(MODEL_CHOICES),
                        help=f"comma-separated subset of {', '.join(MODEL_CHOICES)} "
                        "(lenet: level 0 and 20%% density)")
    parser.add_argument("--options", default=",".join(OPTION_VARIANTS),
                        help="speed options measured against fp32 by 'options': "
                        f"{', '.join(OPTION_VARIANTS)} (tf32 on CUDA only)")
    parser.add_argument("--iterations", type=int, default=2000,
                        help="LeNet iterations per timed run; the conv nets run a fraction")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per figure, median (the conv nets: at most 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per measurement (default: torch's, one per core)")
    parser.add_argument("--loader-workers", type=int, default=0,
                        help="DataLoader worker processes of the peers' way")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                        help="folder of the MNIST test set's IDX .gz files")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for RESULTS.md about the conditions of this run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODEL_CHOICES))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(MODEL_CHOICES)}")
    device = str(device_of(args.device))
    base = {"device": device, "repeats": args.repeats, "mnist": str(args.mnist),
            "threads": args.threads}
    results = Results(device=device)
    networks = [c for m in models if m not in ("population", "options")
                for c in (("lenet", "lenet20") if m == "lenet" else (m,))]
    results.rows, results.counts = measure_networks(networks, base, args)
    if "population" in models:
        results.population, counts = measure_populations(base, args)
        results.counts += counts
    if "options" in models:
        results.options, counts = measure_option_rows(base, args)
        results.counts += counts
    write_results(results, args, argv, __file__)


if __name__ == "__main__":
    main()
