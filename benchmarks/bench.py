#!/usr/bin/env python
"""lth-suite's training speed beside the way peer LTH code trains, on this machine.

    python benchmarks/bench.py [--device cpu|cuda|auto] [--iterations 2000] [--repeats 3]
        [--models lenet,conv4,resnet20,vgg19,population] [--out benchmarks/RESULTS.md]

One table, every figure measured by this run on this machine:

- lth-suite: ``lth_suite.training.train`` on in-memory tensors with masks; iterations/s
  from its own step timer (evaluations excluded), samples/s = iterations/s x batch.
- peers' way: the common PyTorch recipe of open_lth and most LTH repositories: a
  ``DataLoader`` over a torchvision-style ``Dataset`` whose ``__getitem__`` makes a PIL
  image and applies ``ToTensor`` and ``Normalize`` per sample, masks through
  ``torch.nn.utils.prune.custom_from_mask``, plain (for-each) Adam or SGD. Same network
  class, same data, same masks, same hyperparameters.
- FLOP floor: the network's own conv and matrix-multiply shapes, forward and backward
  (weight gradients, and input gradients past the first layer), run back to back as
  raw ATen calls on random tensors: no framework, no autograd, no optimizer, no data,
  no bias, activation, pooling, norm or loss. "of floor" = lth-suite it/s / floor it/s.
- population: K LeNet-300-100 trained at once by ``lth_suite.population.train_population``
  against the same K trained one after another by ``train``; rates in
  network-iterations/s (K x iterations / s).
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
fixed fraction of it (``CASES``), each population an eighth. A full default run takes
about five minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parent.parent / "shared" / "data" / "mnist"
CACHE = HERE / "data"
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
POPULATION_SIZES = (4, 8, 16)


@dataclass(frozen=True)
class Case:
    """One row: a network, its batch, its data and optimizer, and its share of iterations."""

    label: str
    architecture: str
    params: dict[str, Any]
    batch: int
    data: str  # "mnist" or "cifar"
    optimizer: dict[str, Any]
    share: dict[str, float]  # iterations per timed run, as a fraction of --iterations, per device
    density: float = 1.0
    peers_share: float = 1.0  # the peers' way runs this fraction of lth-suite's iterations


ADAM_LENET = {"optimizer": "adam", "lr": 1.2e-3}
SGD = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}
CASES = {
    "lenet": Case("LeNet-300-100, level 0", "mlp", {"hidden": [300, 100]}, 60, "mnist",
                  ADAM_LENET, {"cpu": 1.0, "cuda": 1.0}, peers_share=0.25),
    "lenet20": Case("LeNet-300-100, 20% weights left", "mlp", {"hidden": [300, 100]}, 60,
                    "mnist", ADAM_LENET, {"cpu": 1.0, "cuda": 1.0}, density=0.2,
                    peers_share=0.25),
    "conv4": Case("Conv-4", "conv", {"depth": 4}, 60, "cifar",
                  {"optimizer": "adam", "lr": 3e-4}, {"cpu": 0.003, "cuda": 0.5}),
    "resnet20": Case("ResNet-20", "resnet", {"depth": 20}, 128, "cifar", SGD,
                     {"cpu": 0.0025, "cuda": 0.25}),
    "vgg19": Case("VGG-19", "vgg", {"depth": 19}, 64, "cifar", SGD,
                  {"cpu": 0.0012, "cuda": 0.1}),
}
MODEL_CHOICES = ("lenet", "conv4", "resnet20", "vgg19", "population")


# --- what each measuring process does -------------------------------------------------------

def _device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _mnist_arrays(folder: Path):
    """uint8 images (N, 28, 28) and int64 labels of the MNIST test set, or None."""
    import numpy as np

    cached = CACHE / "mnist_test.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            return arrays["x"], arrays["y"]
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    from lth_suite.builtin.local_datasets import read_idx

    x, y = read_idx(images), read_idx(labels).astype(np.int64)
    CACHE.mkdir(exist_ok=True)
    np.savez(cached, x=x, y=y)
    return x, y


def _raw_data(kind: str, mnist: Path, seed: int = 0):
    """uint8 images as the Dataset would hold them (NHW or NHWC), labels, and a description."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "mnist":
        found = _mnist_arrays(mnist)
        if found is not None:
            return found[0], found[1], "MNIST test set (10,000)"
        x = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
        return x, rng.integers(0, 10, 10_000).astype(np.int64), "random, MNIST's shape"
    x = rng.integers(0, 256, (2_048, 32, 32, 3), dtype=np.uint8)
    return x, rng.integers(0, 10, 2_048).astype(np.int64), "random 3x32x32"


def _tensors(x_uint8, kind: str):
    """The normalised float NCHW tensor of what the Dataset would produce per sample."""
    import torch

    x = torch.from_numpy(x_uint8).float().div_(255)
    x = x.unsqueeze(1) if kind == "mnist" else x.permute(0, 3, 1, 2).contiguous()
    mean, std = (MNIST_MEAN, MNIST_STD) if kind == "mnist" else (CIFAR_MEAN, CIFAR_STD)
    shape = (1, len(mean), 1, 1)
    return x.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def _build(case: Case, device, seed: int = 0):
    import torch

    from lth_suite.data import DataInfo
    from lth_suite.plugins import load_plugins

    shape = (1, 28, 28) if case.data == "mnist" else (3, 32, 32)
    info = DataInfo(case.data, shape, 10)
    torch.manual_seed(seed)
    registry = load_plugins(installed=False, warn=False).registry
    return registry.build("architecture", case.architecture, case.params, info).to(device), info


def _mask(model, density: float, seed: int = 0):
    """Dense, or each prunable layer keeping a random ``density`` of its weights."""
    import torch

    from lth_suite.masks import Mask

    dense = Mask.dense(model)
    if density >= 1:
        return dense
    generator = torch.Generator().manual_seed(seed)
    return Mask({k: torch.rand(v.shape, generator=generator) < density for k, v in dense.items()})


def _warm_up(iterations: int) -> int:
    """Untimed iterations first: allocator, oneDNN primitives and caches settle."""
    return max(2, iterations // 10)


def _timed(device, run, iterations: int) -> float:
    """Iterations per second of ``run(iterations)``, which returns its own seconds or None."""
    _sync(device)
    started = time.perf_counter()
    seconds = run(iterations)
    _sync(device)
    return iterations / (seconds if seconds is not None else time.perf_counter() - started)


def _splits(case: Case, device, mnist: Path):
    import torch

    from lth_suite.data import Splits

    x_raw, y_raw, described = _raw_data(case.data, mnist)
    x, y = _tensors(x_raw, case.data).to(device), torch.from_numpy(y_raw).to(device)
    held = min(500, len(y) // 10)
    model, info = _build(case, device)
    data = Splits(x[2 * held:], y[2 * held:], x[:held], y[:held], x[held:2 * held],
                  y[held: 2 * held], info)
    return model, data, described


def _config(case: Case, data, total: int):
    from lth_suite.spec import Training
    from lth_suite.training import TrainConfig

    training = Training(batch_size=case.batch, duration=f"{total}it", eval_every=total,
                        **case.optimizer)
    return TrainConfig.resolve(training, len(data.y_train))


def lth_runner(case: Case, device, mnist: Path):
    """``run(n)``: n iterations of ``lth_suite.training.train``, returning its step seconds."""
    from lth_suite.training import train

    model, data, described = _splits(case, device, mnist)
    mask = _mask(model, case.density)
    seeds = iter(range(1, 1_000_000))

    def run(iterations: int) -> float:
        result = train(model, mask, data, _config(case, data, iterations), data_seed=next(seeds))
        return result.timings["steps"]  # evaluations excluded

    return run, model, data.info, described


def floor_runner(model, info, batch: int, device):
    """``run(n)``: n passes of the network's conv and matmul shapes alone, forward and backward."""
    import torch
    from torch import nn

    shapes: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: shapes.append((m, tuple(args[0].shape))))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(batch, *info.input_shape, device=device))
        model.train()
    for hook in hooks:
        hook.remove()
    aten = torch.ops.aten
    ops = []
    for index, (module, in_shape) in enumerate(shapes):
        x = torch.randn(in_shape, device=device)
        w = torch.randn_like(module.weight)
        if isinstance(module, nn.Linear):
            x = x.reshape(-1, module.in_features)
            g = torch.randn(x.shape[0], module.out_features, device=device)
            ops.append(("linear", x, w, g, index > 0, None))
        else:
            out = torch.nn.functional.conv2d(x, w, None, module.stride, module.padding,
                                             module.dilation, module.groups)
            ops.append(("conv", x, w, torch.randn_like(out), index > 0, module))

    def step() -> None:
        for kind, x, w, g, needs_input_grad, module in ops:
            if kind == "linear":
                torch.mm(x, w.t())
                torch.mm(g.t(), x)
                if needs_input_grad:
                    torch.mm(g, w)
            else:
                aten.convolution(x, w, None, module.stride, module.padding, module.dilation,
                                 False, [0, 0], module.groups)
                aten.convolution_backward(g, x, w, None, module.stride, module.padding,
                                          module.dilation, False, [0, 0], module.groups,
                                          [needs_input_grad, True, False])

    def run(iterations: int) -> None:
        for _ in range(iterations):
            step()

    return run


class PeerDataset:
    """A torchvision-style dataset: uint8 arrays, PIL image and transforms per sample."""

    def __init__(self, images, labels, mean, std):
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.mode = "L" if images.ndim == 3 else "RGB"
        self.transform = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index], mode=self.mode)
        return self.transform(image), int(self.labels[index])


def peers_runner(case: Case, device, mnist: Path, workers: int):
    """``run(n)``: n steps the peers' way: DataLoader, prune masks, for-each optimizer."""
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import prune
    from torch.utils.data import DataLoader

    x_raw, y_raw, _ = _raw_data(case.data, mnist)
    held = min(500, len(y_raw) // 10)
    mean, std = (MNIST_MEAN, MNIST_STD) if case.data == "mnist" else (CIFAR_MEAN, CIFAR_STD)
    dataset = PeerDataset(x_raw[2 * held:], y_raw[2 * held:], mean, std)
    loader = DataLoader(dataset, batch_size=case.batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    model, _ = _build(case, device)
    modules = dict(model.named_modules())
    for name, keep in _mask(model, case.density).items():
        prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", keep.to(device))
    settings = {k: v for k, v in case.optimizer.items() if k != "optimizer"}
    if case.optimizer["optimizer"] == "adam":
        optimizer = torch.optim.Adam(model.parameters(), foreach=False, **settings)
    else:
        optimizer = torch.optim.SGD(model.parameters(), foreach=False, **settings)
    model.train()
    batches = iter(loader)

    def run(iterations: int) -> None:
        nonlocal batches
        for _ in range(iterations):
            try:
                x, y = next(batches)
            except StopIteration:  # a new epoch: a new shuffle
                batches = iter(loader)
                x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    return run


def population_runner(k: int, population: bool, device, mnist: Path):
    """``run(n)``: K LeNet-300-100 at level 0 for n iterations, as one population or in turn."""
    import copy

    from lth_suite.population import Member, train_population
    from lth_suite.training import snapshot, train

    case = CASES["lenet"]
    template, data, described = _splits(case, device, mnist)
    states, masks = [], []
    for member in range(k):
        model, _ = _build(case, device, seed=member)
        states.append(snapshot(model))
        masks.append(_mask(model, 1.0))

    def run(iterations: int) -> None:
        config = _config(case, data, iterations)
        if population:
            members = [Member(states[m], masks[m], data_seed=m) for m in range(k)]
            train_population(template, members, data, config)
            return
        for m in range(k):
            model = copy.deepcopy(template)
            model.load_state_dict(states[m])
            train(model, masks[m], data, config, data_seed=m)

    return run, described


def measure_rates(job: dict, device, mnist: Path) -> dict:
    """Every rate of one row, in one process, timed runs interleaved round by round.

    The machine's speed drifts (shared virtual CPUs): interleaving exposes every method
    to the same drift, so the ratios hold even when the absolute rates move.
    """
    repeats = job["repeats"]
    if "k" in job:
        k, n = job["k"], job["iterations"]
        runners = {"population": (population_runner(k, True, device, mnist)[0], n),
                   "sequential": (population_runner(k, False, device, mnist)[0], n)}
        described = _raw_data("mnist", mnist)[2]
        scale = k  # network-iterations per iteration
    else:
        case = CASES[job["case"]]
        lth, model, info, described = lth_runner(case, device, mnist)
        runners = {"lth": (lth, job["iterations"]),
                   "peers": (peers_runner(case, device, mnist, job["workers"]),
                             job["peers_iterations"]),
                   "floor": (floor_runner(model, info, case.batch, device), job["iterations"])}
        scale = 1
    for run, n in runners.values():
        _timed(device, run, _warm_up(n))
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (run, n) in runners.items():
            rates[name].append(scale * _timed(device, run, n))
    found = {name: max(r) if name == "floor" else statistics.median(r)
             for name, r in rates.items()}
    return {"rates": found, "runs": rates, "data": described}


def measure_memory(job: dict, device, mnist: Path) -> dict:
    """Peak memory of one method alone: its set-up, warm-up and a few timed-size steps."""
    if "k" in job:
        run, _ = population_runner(job["k"], job["method"] == "population", device, mnist)
    elif job["method"] == "lth":
        run = lth_runner(CASES[job["case"]], device, mnist)[0]
    else:
        run = peers_runner(CASES[job["case"]], device, mnist, job["workers"])
    run(_warm_up(job["iterations"]))
    return {"peak_mib": _peak_mib(device)}


def worker(job: dict) -> dict:
    """One measuring process: a row's rates, or one method's peak memory."""
    import torch

    import lth_suite.training  # noqa: F401 - the imports' memory, before any data

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    device = _device(job["device"])
    imports_mib = _peak_mib(torch.device("cpu"))
    mnist = Path(job["mnist"])
    measure = measure_rates if job["kind"] == "rates" else measure_memory
    return {**measure(job, device, mnist), "imports_mib": imports_mib,
            "threads": torch.get_num_threads()}


# --- the driver: one process per measurement, then the table --------------------------------

def _run_worker(job: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"measurement {job} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if digits == 0 and value < 10:
        digits = 2 if value < 1 else 1
    return f"{value:,.{digits}f}{suffix}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    parser.add_argument("--models", default=",".join(MODEL_CHOICES),
                        help=f"comma-separated subset of {', '.join(MODEL_CHOICES)} "
                        "(lenet: level 0 and 20%% density)")
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
    import torch

    device = str(_device(args.device))
    started, load_before = time.time(), os.getloadavg()
    base = {"device": device, "repeats": args.repeats, "mnist": str(args.mnist),
            "threads": args.threads}
    cases = [c for m in models if m != "population"
             for c in (("lenet", "lenet20") if m == "lenet" else (m,))]
    rows, counts = [], []
    for name in cases:
        case = CASES[name]
        iterations = max(3, round(args.iterations * case.share[device.split(":")[0]]))
        peers_iterations = max(3, round(iterations * case.peers_share))
        repeats = args.repeats if case.data == "mnist" else min(args.repeats, 3)
        print(f"{case.label}: {iterations} iterations ({peers_iterations} the peers' way) x "
              f"{repeats}", file=sys.stderr, flush=True)
        job = {**base, "case": name, "iterations": iterations, "repeats": repeats,
               "peers_iterations": peers_iterations, "workers": args.loader_workers}
        measured = _run_worker({**job, "kind": "rates"})
        memory = {method: _run_worker({**job, "kind": "memory", "method": method})
                  for method in ("lth", "peers")}
        rows.append((case, measured, memory))
        counts.append(f"{case.label} {iterations} ({peers_iterations} the peers' way), "
                      f"{repeats} rounds")
    population = []
    if "population" in models:
        iterations, repeats = max(3, args.iterations // 8), min(args.repeats, 2)
        for k in POPULATION_SIZES:
            print(f"population of {k}: {iterations} iterations x {repeats}", file=sys.stderr,
                  flush=True)
            job = {**base, "k": k, "iterations": iterations, "repeats": repeats}
            measured = _run_worker({**job, "kind": "rates"})
            memory = {method: _run_worker({**job, "kind": "memory", "method": method})
                      for method in ("population", "sequential")}
            population.append((k, measured, memory))
        counts.append(f"populations {iterations} ({repeats} rounds)")
    elapsed, load_after = time.time() - started, os.getloadavg()

    memory = "peak MiB (CUDA allocated)" if device.startswith("cuda") else "peak RSS MiB"
    lines = [
        f"| network | batch | data | lth-suite it/s | samples/s | peers' way it/s | speed-up "
        f"| FLOP floor it/s | of floor | {memory}: lth-suite / peers |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, measured, memory in rows:
        rate = measured["rates"]
        lines.append(
            f"| {case.label} | {case.batch} | {measured['data']} | {_fmt(rate['lth'])} | "
            f"{_fmt(rate['lth'] * case.batch)} | {_fmt(rate['peers'])} | "
            f"{rate['lth'] / rate['peers']:.1f}x | {_fmt(rate['floor'])} | "
            f"{100 * rate['lth'] / rate['floor']:.0f}% | "
            f"{memory['lth']['peak_mib']:,.0f} / {memory['peers']['peak_mib']:,.0f} |")
    for k, measured, memory in population:
        rate = measured["rates"]
        lines.append(
            f"| {k} x LeNet-300-100, population | 60 | {measured['data']} | "
            f"{_fmt(rate['population'])} * | {_fmt(rate['population'] * 60)} | "
            f"{_fmt(rate['sequential'])} * (sequential) | "
            f"{rate['population'] / rate['sequential']:.2f}x | - | - | "
            f"{memory['population']['peak_mib']:,.0f} / "
            f"{memory['sequential']['peak_mib']:,.0f} |")
    table = "\n".join(lines)
    print(table)

    script = os.path.relpath(__file__, Path.cwd())
    command = "python " + " ".join(shlex.quote(a) for a in [script, *(argv or sys.argv[1:])])
    processes = [m for _, rates, memory in rows + population for m in (rates, *memory.values())]
    threads = processes[0]["threads"] if processes else torch.get_num_threads()
    imports = [m["imports_mib"] for m in processes]
    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    report = [
        "# lth-suite benchmark",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores; device {device}{gpu}; "
        f"torch threads {threads}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
        f"- load average (1 min) {load_before[0]:.2f} at start, {load_after[0]:.2f} at end; "
        f"the run took {elapsed:.0f} s",
        f"- command: `{command}`",
        *(f"- note: {note}" for note in args.note),
        "",
        table,
        "",
        "How each figure is measured (all in this run):",
        "",
        "- **lth-suite**: `lth_suite.training.train` on in-memory tensors with the masks "
        "(dense at level 0, else 20% of each layer's weights kept at random); iterations/s "
        "from the training's own step timer (evaluations excluded); samples/s = it/s x "
        "batch.",
        "- **peers' way**: a `DataLoader` (shuffle, "
        f"{args.loader_workers} worker processes) over a torchvision-style `Dataset` "
        "(uint8 arrays; per sample a PIL image, `ToTensor`, `Normalize`, as torchvision's "
        "MNIST/CIFAR classes and open_lth do), masks through "
        "`torch.nn.utils.prune.custom_from_mask`, `torch.optim.Adam`/`SGD` with "
        "`foreach=False`; the same network class, data, masks and hyperparameters. "
        "Speed-up = lth-suite it/s / peers' it/s.",
        "- **FLOP floor**: the network's own conv and matmul shapes (forward, weight "
        "gradients, input gradients past the first layer) as raw ATen calls on random "
        "tensors, back to back: no autograd, optimizer, data, bias, activation, pooling, "
        "norm or loss. \"of floor\" = lth-suite it/s / floor it/s.",
        "- **population** rows (*): network-iterations/s (K x iterations / s) of K "
        "LeNet-300-100 at level 0 trained at once by `lth_suite.population.train_population`, "
        "beside the same K trained one after another by `train` (the peers' column); "
        "speed-up = population / sequential. `training.population: auto` uses populations "
        "on CUDA only.",
        f"- **peak memory**: {'`torch.cuda.max_memory_allocated`' if gpu else '`ru_maxrss`'} of "
        "a process running that method alone (set-up and warm-up)"
        + (f"; a process that has imported torch and lth-suite holds {min(imports):,.0f}-"
           f"{max(imports):,.0f} MiB before any data" if imports and not gpu else "") + ".",
        "- **timing**: one process per row times its methods in turn, round after round, "
        "so that every method sees the same drift of the machine's speed; each rate is the "
        "median of its rounds, the floor the best of them. Iterations per timed run: "
        f"{'; '.join(counts)}; after an untimed warm-up of a tenth as many.",
        "- optimizers: Adam (lr 1.2e-3 LeNet, 3e-4 Conv-4), SGD (momentum 0.9, lr 0.01, weight "
        "decay 1e-4: ResNet-20, VGG-19); hyperparameters do not change the speed.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
