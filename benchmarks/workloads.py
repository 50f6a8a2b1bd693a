"""What the benchmark trains: its networks, data, and lth-suite's own training of them.

Imported by the measuring processes of ``bench.py``; torch and lth-suite are imported
inside the functions, so the driver process stays light.
"""

from __future__ import annotations

import resource
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
    # specs/vit_mnist.yaml's network through the lth-suite-timm plugin; the peers' way is
    # a plain timm training loop (DataLoader, torch.optim.AdamW, prune masks).
    "vit": Case("ViT-tiny-shaped (timm, width 96, depth 2, 7x7 patches)", "timm",
                {"arch": "vit_tiny_patch16_224",
                 "kwargs": {"img_size": 28, "patch_size": 7, "embed_dim": 96, "depth": 2}},
                64, "mnist", {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
                {"cpu": 0.05, "cuda": 0.5}),
}
MODEL_CHOICES = ("lenet", "conv4", "resnet20", "vgg19", "vit", "population", "options")
# The spec's speed options, each measured against plain fp32 on the same network.
OPTION_VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "tf32": {"precision": "tf32"},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
    "compile": {"compile": True},
}
OPTION_CASES = ("lenet", "conv4", "vgg19")


def device_of(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def mnist_arrays(folder: Path):
    """uint8 images (N, 28, 28) and int64 labels of the MNIST test set, or None."""
    import numpy as np

    cached = CACHE / "mnist_test.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            return arrays["x"], arrays["y"]
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    from lth_suite.builtin.datasets.local import read_idx

    x, y = read_idx(images), read_idx(labels).astype(np.int64)
    CACHE.mkdir(exist_ok=True)
    np.savez(cached, x=x, y=y)
    return x, y


def raw_data(kind: str, mnist: Path, seed: int = 0):
    """uint8 images as the Dataset would hold them (NHW or NHWC), labels, and a description."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "mnist":
        found = mnist_arrays(mnist)
        if found is not None:
            return found[0], found[1], "MNIST test set (10,000)"
        x = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
        return x, rng.integers(0, 10, 10_000).astype(np.int64), "random, MNIST's shape"
    x = rng.integers(0, 256, (2_048, 32, 32, 3), dtype=np.uint8)
    return x, rng.integers(0, 10, 2_048).astype(np.int64), "random 3x32x32"


def tensors(x_uint8, kind: str):
    """The normalised float NCHW tensor of what the Dataset would produce per sample."""
    import torch

    x = torch.from_numpy(x_uint8).float().div_(255)
    x = x.unsqueeze(1) if kind == "mnist" else x.permute(0, 3, 1, 2).contiguous()
    mean, std = (MNIST_MEAN, MNIST_STD) if kind == "mnist" else (CIFAR_MEAN, CIFAR_STD)
    shape = (1, len(mean), 1, 1)
    return x.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def build(case: Case, device, seed: int = 0):
    import torch

    from lth_suite.plugins.manager import load_plugins
    from lth_suite.training.data import DataInfo

    shape = (1, 28, 28) if case.data == "mnist" else (3, 32, 32)
    info = DataInfo(case.data, shape, 10)
    torch.manual_seed(seed)
    extra = []
    if case.architecture == "timm":  # the plugin package, installed or not
        sys.path.insert(0, str(HERE.parent / "plugins" / "lth-suite-timm" / "src"))
        import lth_suite_timm

        extra = [lth_suite_timm]
    registry = load_plugins(extra=extra, installed=False, warn=False).registry
    return registry.build("architecture", case.architecture, case.params, info).to(device), info


def mask_of(model, density: float, seed: int = 0):
    """Dense, or each prunable layer keeping a random ``density`` of its weights."""
    import torch

    from lth_suite.pruning.masks import Mask

    dense = Mask.dense(model)
    if density >= 1:
        return dense
    generator = torch.Generator().manual_seed(seed)
    return Mask({k: torch.rand(v.shape, generator=generator) < density for k, v in dense.items()})


def warm_up(iterations: int) -> int:
    """Untimed iterations first: allocator, oneDNN primitives and caches settle."""
    return max(2, iterations // 10)


def timed(device, run, iterations: int) -> float:
    """Iterations per second of ``run(iterations)``, which returns its own seconds or None."""
    sync(device)
    started = time.perf_counter()
    seconds = run(iterations)
    sync(device)
    return iterations / (seconds if seconds is not None else time.perf_counter() - started)


def splits(case: Case, device, mnist: Path):
    import torch

    from lth_suite.training.data import Splits

    x_raw, y_raw, described = raw_data(case.data, mnist)
    x, y = tensors(x_raw, case.data).to(device), torch.from_numpy(y_raw).to(device)
    held = min(500, len(y) // 10)
    model, info = build(case, device)
    data = Splits(x[2 * held:], y[2 * held:], x[:held], y[:held], x[held:2 * held],
                  y[held: 2 * held], info)
    return model, data, described


def train_config(case: Case, data, total: int, options: dict[str, Any] | None = None):
    """The case's training for ``total`` iterations, with speed ``options`` (``training`` fields)."""
    from lth_suite.spec.sections import Training
    from lth_suite.training.config import TrainConfig

    training = Training(batch_size=case.batch, duration=f"{total}it", eval_every=total,
                        **case.optimizer, **(options or {}))
    return TrainConfig.resolve(training, len(data.y_train))


def lth_runner(case: Case, device, mnist: Path, options: dict[str, Any] | None = None):
    """``run(n)``: n iterations of ``lth_suite.training.train``, returning its step seconds.

    ``options`` are ``training`` fields of the spec: precision, channels_last, compile.
    """
    from lth_suite.training.single import train

    model, data, described = splits(case, device, mnist)
    mask = mask_of(model, case.density)
    seeds = iter(range(1, 1_000_000))

    def run(iterations: int) -> float:
        config = train_config(case, data, iterations, options)
        result = train(model, mask, data, config, data_seed=next(seeds))
        return result.timings["steps"]  # evaluations excluded

    return run, model, data.info, described


def population_runner(k: int, population: bool, device, mnist: Path):
    """``run(n)``: K LeNet-300-100 at level 0 for n iterations, as one population or in turn."""
    import copy

    from lth_suite.training.population import Member, train_population
    from lth_suite.training.result import snapshot
    from lth_suite.training.single import train

    case = CASES["lenet"]
    template, data, described = splits(case, device, mnist)
    states, masks = [], []
    for member in range(k):
        model, _ = build(case, device, seed=member)
        states.append(snapshot(model))
        masks.append(mask_of(model, 1.0))

    def run(iterations: int) -> None:
        config = train_config(case, data, iterations)
        if population:
            members = [Member(states[m], masks[m], data_seed=m) for m in range(k)]
            train_population(template, members, data, config)
            return
        for m in range(k):
            model = copy.deepcopy(template)
            model.load_state_dict(states[m])
            train(model, masks[m], data, config, data_seed=m)

    return run, described
