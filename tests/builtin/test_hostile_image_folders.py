"""Hostile image folders: link loops, FIFOs, devices, broken links, bombs, huge headers,
corrupt files and names with terminal escapes end in one line, never a hang or a
traceback, and every real image counts once."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lth_suite.builtin.datasets import ImageFolderParams
from lth_suite.builtin.datasets.image_files import MAX_PIXELS, open_image, scan
from lth_suite.builtin.datasets.imagefolder import load_imagefolder
from lth_suite.cli import app
from lth_suite.errors import DataError
from tests.training.test_streaming import write_image_folder

ESCAPE = "\x1b[31m"


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images")


def class0(root: Path) -> Path:
    return root / "train" / "class0"


def count(root: Path) -> int:
    return len(scan(root / "train")[0])


def test_link_loops_are_walked_once_and_each_real_image_counts_once(images):
    before = count(images)
    os.symlink("..", class0(images) / "up")  # to train/: every class again, and a loop
    os.symlink(".", class0(images) / "self")
    os.symlink(class0(images) / "0.png", class0(images) / "again.png")  # one file, two names
    (class0(images) / "sub").mkdir()
    os.symlink("../..", class0(images) / "sub" / "loop")
    assert count(images) == before


@pytest.mark.parametrize("make, words", [
    (lambda p: os.mkfifo(p), "is a FIFO"),
    (lambda p: os.symlink("/dev/zero", p), "is a character device"),
    (lambda p: os.symlink("missing.png", p), "cannot be opened"),
    (lambda p: os.symlink(p.name, p), "cannot be opened"),  # a link to itself
])
def test_what_is_not_a_regular_file_is_refused_before_it_is_read(images, make, words):
    bad = class0(images) / "bad.png"
    make(bad)
    with pytest.raises(DataError, match=words) as caught:
        scan(images / "train")
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("payload, words", [
    (png_claiming(9_000, 9_000), "claims 9000 x 9000 pixels"),  # past ours, short of PIL's
    (png_claiming(100_000, 100_000), "decompression bomb"),  # PIL's own limit, first
    (png_claiming(2**31 - 1, 2**31 - 1), "pixels"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image"),  # truncated
    (b"GIF89a" + os.urandom(30), "not a readable image"),
    (b"", "not a readable image"),
], ids=["9000-square", "100000-square", "2^31-square", "truncated", "garbage", "empty"])
def test_bombs_huge_headers_and_corrupt_images_are_one_line(tmp_path, payload, words):
    path = tmp_path / "x.png"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=words) as caught:
        open_image(str(path))
    assert "\n" not in str(caught.value)


def test_a_real_decompression_bomb_is_refused_by_its_header(tmp_path):
    from PIL import Image

    side = int(MAX_PIXELS ** 0.5) + 100
    Image.new("1", (side, side)).save(tmp_path / "bomb.png")  # a few kB on disk
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(DataError, match="decompression bomb"):
        open_image(str(tmp_path / "bomb.png"))


def spec(tmp_path: Path, images: Path, storage: str) -> Path:
    data = {"experiment": {"name": "hostile", "seed": 0},
            "model": {"name": "mlp", "hidden": [8]},
            "dataset": {"name": "imagefolder", "root": str(images), "image_size": 32,
                        "resize": 32, "validation": 3, "storage": storage, "workers": 0,
                        "eval_batch_size": 12},
            "training": {"batch_size": 6, "duration": "4it", "eval_every": 2},
            "pruning": {"levels": 1}, "controls": {"reinit": False, "random_prune": False},
            "tracking": {"log_models": "none"}, "report": {"enabled": False}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_escape_sequence_in_a_name_never_reaches_the_terminal(tmp_path, images, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    (class0(images) / f"{ESCAPE}red.png").write_bytes(b"not an image")
    result = CliRunner().invoke(app, ["run", "--dry-run", str(spec(tmp_path, images, "memory"))])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "\\x1b[31mred.png" in errors[0], result.output
    assert "\x1b" not in result.output


def test_a_corrupt_image_met_while_streaming_ends_with_the_file_and_resume(
        tmp_path, images, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LTH_SUITE_LOAD_PLUGINS", "")
    for path in class0(images).glob("*.png"):  # every image of a class: met in the first batch
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = CliRunner().invoke(app, ["run", str(spec(tmp_path, images, "stream"))])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "class0" in errors[0] and "not a readable image" in errors[0]
    assert "resume with: lth-suite resume" in errors[0]


def test_the_dataset_loads_each_real_image_once_through_a_loop(images):
    os.symlink("..", class0(images) / "up")
    data = load_imagefolder(ImageFolderParams(root=images, image_size=32, resize=32,
                                              validation=3, storage="memory"), 0)
    assert len(data.x_train) == count(images) and len(data.x_train) == 24
