"""The machine a measurement ran on, as short strings (MLflow tags, report headers)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device, threads: int) -> dict[str, str]:
    """CPU (or GPU), threads, torch version and device of a measurement."""
    machine = {"device": device.type, "cpu": cpu_model(), "threads": str(threads),
               "torch": torch.__version__, "platform": platform.platform(terse=True)}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
        machine["cuda"] = str(torch.version.cuda)
    return machine

