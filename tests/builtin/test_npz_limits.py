"""An .npz that cannot fit what this process may use is refused before decompressing,
with the size it needs and the limit it meets; a decompression bomb is refused at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from lth_suite.builtin.datasets.files import read_npz
from lth_suite.cli import app
from lth_suite.errors import DataError

MIB = 2**20


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """100 MiB of zeros deflated to about 100 kB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    np.savez_compressed(path, x=np.zeros(100 * MIB, np.uint8), y=np.zeros(10, np.int64))
    assert path.stat().st_size < 2 * MIB
    return path


def test_a_decompression_bomb_is_refused_quickly(bomb):
    started = time.perf_counter()
    with pytest.raises(DataError, match="decompression bomb") as caught:
        read_npz(bomb, ["x", "y"])
    assert time.perf_counter() - started < 2  # nothing was inflated
    message = str(caught.value)
    assert "'x'" in message and "\n" not in message


def test_an_npz_beyond_the_address_space_limit_is_refused_before_it_is_read(tmp_path):
    """In a child process with RLIMIT_AS just above what it holds: refused by its size,
    naming the limit, instead of a MemoryError."""
    path = tmp_path / "big.npz"
    np.savez(path, x=np.ones(64 * MIB, np.uint8), y=np.zeros(10, np.int64))  # stored: 1-fold
    code = textwrap.dedent(f"""
        import os, resource
        from pathlib import Path
        from lth_suite.builtin.datasets.files import read_npz
        from lth_suite.errors import DataError
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (size + {32 * MIB}, resource.RLIM_INFINITY))
        try:
            read_npz(Path({str(path)!r}), ["x", "y"])
        except DataError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LTH_SUITE_LOAD_PLUGINS": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "RLIMIT_AS" in lines[0] and "64.0 MiB" in lines[0], done


def test_the_cli_refuses_a_bomb_in_one_line(bomb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"dataset": {"name": "npz", "path": str(bomb)},
                                    "model": {"name": "mlp", "hidden": [8]}}))
    result = CliRunner().invoke(app, ["run", "--dry-run", str(spec)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "decompression bomb" in lines[0], result.output


def test_a_fifo_in_place_of_a_data_file_is_refused_without_waiting(tmp_path):
    from lth_suite.builtin.datasets.files import read_idx

    for name in ("train-images-idx3-ubyte", "x.gz", "data.npz"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(tmp_path / "x.gz")
    with pytest.raises(DataError, match="not a file"):
        read_npz(tmp_path / "data.npz", ["x"])
