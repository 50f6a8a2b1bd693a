"""The paper's presets in ``specs/`` and the ``mlflow run`` parameters that select them."""

from __future__ import annotations

from pathlib import Path

from ..errors import LthError

PRESETS = {
    "lenet": "lenet300_mnist.yaml",
    "conv2": "conv2_cifar10.yaml",
    "conv4": "conv4_cifar10.yaml",
    "conv6": "conv6_cifar10.yaml",
    "vgg19": "vgg19_cifar10.yaml",
    "resnet20": "resnet20_cifar10.yaml",
    "resnet50": "imagenet_resnet50.yaml",
}


def preset_path(model: str, specs_dir: Path = Path("specs")) -> Path:
    """The preset spec of a model name, e.g. ``vgg19`` -> ``specs/vgg19_cifar10.yaml``."""
    if model not in PRESETS:
        raise LthError(f"model: unknown preset '{model}' (known: {', '.join(PRESETS)})")
    return specs_dir / PRESETS[model]


def project_overrides(*, dataset: str = "", data_root: str = "", levels: str = "",
                      iterations: str = "", replicates: str = "", device: str = "",
                      overrides: str = "") -> list[str]:
    """``--set`` overrides from the MLproject parameters; empty ones are left out.

    A new dataset replaces the whole dataset section, since the preset's params
    (``root``, ``augment``, the validation size) may not fit it.
    """
    sets = []
    if dataset:
        sets.append(f"dataset={{name: {dataset}}}")
    if data_root:
        sets.append(f"dataset.root={data_root}")
    if levels:
        sets.append(f"pruning.levels={levels}")
    if iterations:
        sets.append(f"training.duration={iterations}it")
    if replicates:
        sets.append(f"experiment.replicates={replicates}")
    if device:
        sets.append(f"device={device}")
    sets += [part.strip() for part in overrides.split(";") if part.strip()]
    return sets
