"""Property test: hostile npz and IDX files end in one error line and exit 2, before any run.

Each class of bad file (truncated, corrupted, renamed, pickled, lying headers, zip and gzip
bombs, NaN features, bad labels, bad shapes, too few examples) is generated with hypothesis
and given to ``lth-suite run --dry-run`` and ``lth-suite run`` in process.
"""

from __future__ import annotations

import copy
import gzip
import io
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lth_suite.builtin.datasets import MNIST_FILES, files
from lth_suite.cli import app
from lth_suite.errors import DataError
from tests.conftest import TINY

FUZZ = settings(deadline=None, derandomize=True, max_examples=6,  # per class
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL_LIMIT = 64 * 2**10  # the data limit while a bomb class runs: bombs stay small here


# --- files ------------------------------------------------------------------------------

def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """An .npy file whose header may claim another ``shape`` than its data has."""
    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(array.tobytes())
    return buffer.getvalue()


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


@st.composite
def good_arrays(draw) -> dict[str, np.ndarray]:
    """A valid training set: 24 to 40 examples of 4 features, 3 classes."""
    n = draw(st.integers(24, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return {"x": rng.normal(size=(n, 4)).astype(np.float32), "y": np.arange(n) % 3}


def damage(draw, payload: bytes, start: int = 0, end: int | None = None) -> bytes:
    """The bytes with one to three of those in [start, end) changed."""
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(start, (len(data) if end is None else end) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@st.composite
def corrupted_npz(draw) -> bytes:
    """A valid archive with bytes of one stored member changed (header or data).

    Bytes elsewhere (timestamps, comments) are not read by anyone, so changing them
    would leave a valid file."""
    payload = npz_bytes(**draw(good_arrays()))
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        info = draw(st.sampled_from(archive.infolist()))
    local = struct.unpack("<HH", payload[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + sum(local)  # after the local header, name and extra
    return damage(draw, payload, start, start + info.compress_size)


def with_array(name: str, make: Callable[[Any, dict[str, np.ndarray]], np.ndarray]):
    """A class that replaces (or adds) one array of a valid set."""

    @st.composite
    def build(draw) -> bytes:
        arrays = draw(good_arrays())
        arrays[name] = make(draw, arrays)
        return npz_bytes(**arrays)

    return build()


def _nan_features(draw, arrays):
    x = arrays["x"].astype(draw(st.sampled_from([np.float16, np.float32, np.float64])))
    x[draw(st.integers(0, len(x) - 1)), draw(st.integers(0, 3))] = draw(
        st.sampled_from([np.nan, np.inf, -np.inf]))
    return x


def _bad_labels(kind: str):
    def make(draw, arrays):
        y = arrays["y"].copy()
        at = draw(st.integers(0, len(y) - 1))
        if kind == "negative":
            y[at] = -draw(st.integers(1, 2**31))
        elif kind == "fractional":
            y = y.astype(np.float64)
            y[at] += draw(st.floats(0.01, 0.99))
        elif kind == "one_hot":
            y = np.eye(3, dtype=draw(st.sampled_from([np.float32, np.int64, np.uint8])))[y]
        elif kind == "out_of_range":
            y[at] = draw(st.integers(len(y), 2**62))
        elif kind == "nan":
            y = y.astype(np.float32)
            y[at] = np.nan
        elif kind == "one_class":
            y[:] = draw(st.integers(0, 5))
        else:
            y = y.astype(draw(st.sampled_from([np.str_, np.bytes_, np.complex64, object])))
        return y

    return make


def _few_examples(draw, arrays):
    n = draw(st.integers(0, 1))
    arrays["y"] = arrays["y"][:n]
    return arrays["x"][:n]


NPZ_CLASSES: dict[str, Any] = {
    "truncated": st.builds(lambda data, cut: data[: int(len(data) * cut)],
                           good_arrays().map(lambda a: npz_bytes(**a)), st.floats(0, 0.99)),
    "corrupted": corrupted_npz(),
    "empty": st.just(b""),
    "npy_renamed": good_arrays().map(lambda a: npy_bytes(a["x"])),
    "pickled": good_arrays().map(lambda a: pickle.dumps(a)),
    "object_array": with_array("x", lambda draw, a: np.array(
        [draw(st.sampled_from([None, "a", 1.5]))] * len(a["y"]), dtype=object)[:, None]),
    "text_or_complex_features": with_array("x", lambda draw, a: a["x"].astype(
        draw(st.sampled_from([np.complex64, np.str_, np.bytes_, "datetime64[s]"])))),
    "lying_npy_header": st.composite(lambda draw: (lambda a: zipped({
        "x.npy": npy_bytes(a["x"], (len(a["x"]) + draw(st.sampled_from([-len(a["x"]), -1, 1,
                                                                          2**40])), 4)),
        "y.npy": npy_bytes(a["y"])}))(draw(good_arrays())))(),
    "zip_bomb": st.integers(SMALL_LIMIT + 1, 4 * SMALL_LIMIT).map(lambda size: zipped({
        "x.npy": npy_bytes(np.zeros((size // 4, 1), np.float32)),
        "y.npy": npy_bytes(np.arange(size // 4) % 2)}, zipfile.ZIP_DEFLATED)),
    "nan_features": with_array("x", _nan_features),
    "labels_negative": with_array("y", _bad_labels("negative")),
    "labels_fractional": with_array("y", _bad_labels("fractional")),
    "labels_one_hot": with_array("y", _bad_labels("one_hot")),
    "labels_out_of_range": with_array("y", _bad_labels("out_of_range")),
    "labels_nan": with_array("y", _bad_labels("nan")),
    "labels_one_class": with_array("y", _bad_labels("one_class")),
    "labels_text": with_array("y", _bad_labels("text")),
    "one_dimensional_features": with_array("x", lambda draw, a: a["x"][:, 0]),
    "x_test_other_shape": st.composite(lambda draw: (lambda a: npz_bytes(
        **a, x_test=np.zeros((5, draw(st.sampled_from([3, 5, 16])))), y_test=np.zeros(5)))(
        draw(good_arrays())))(),
    "few_examples": with_array("x", _few_examples),
}


# What the first error line must say for each class (besides naming the file).
NPZ_PROBLEMS = {
    "truncated": "is empty|not an .npz archive",
    "corrupted": "cannot be read|damaged|not a readable|invalid shape|Python objects",
    "empty": "is empty",
    "npy_renamed": "single .npy array",
    "pickled": "pickled",
    "object_array": "Python objects",
    "text_or_complex_features": "holds (strings|byte strings|complex numbers|dates)",
    "lying_npy_header": "damaged: its header promises",
    "zip_bomb": "once decompressed",
    "nan_features": "NaN or infinite value",
    "labels_negative": "negative labels",
    "labels_fractional": "fractional labels",
    "labels_one_hot": "one-hot",
    "labels_out_of_range": r"holds label \d+ for \d+ examples",
    "labels_nan": "NaN or infinite labels",
    "labels_one_class": "two classes or more",
    "labels_text": "holds (strings|byte strings|complex numbers|Python objects)",
    "one_dimensional_features": r"x\[:, None\]",
    "x_test_other_shape": "examples of shape",
    "few_examples": "at least 2 are needed",
}
IDX_PROBLEMS = {
    "truncated": "is empty|not an IDX file|truncated",
    "lying_header": "header promises shape",
    "wrong_type": "not an IDX file of unsigned bytes",
    "no_dimensions": "no dimensions",
    "labels_out_of_range": "outside the 10 classes",
    "swapped_files": "labels are one class index|not images",
    "few_examples": "at least . (is|are) needed",
    "corrupted_gzip": "cannot read",
    "gzip_bomb": "once decompressed",
    "empty": "is empty",
}


def idx_bytes(array: np.ndarray, shape: tuple[int, ...] | None = None, kind: int = 0x08) -> bytes:
    """An IDX file whose header may claim another shape or element type."""
    shape = array.shape if shape is None else shape
    return bytes([0, 0, kind, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + \
        array.astype(np.uint8).tobytes()


def good_mnist(n: int = 12) -> dict[str, np.ndarray]:
    images = (np.arange(n * 28 * 28) % 256).astype(np.uint8).reshape(n, 28, 28)
    return {"x_train": images, "y_train": np.arange(n) % 10,
            "x_test": images[:6], "y_test": np.arange(6) % 10}


IDX_CLASSES = list(IDX_PROBLEMS)


def _gunzips_to(stream: bytes, original: bytes) -> bool:
    try:
        return gzip.decompress(stream) == original
    except (OSError, EOFError, zlib.error):
        return False


@st.composite
def idx_case(draw, kind: str) -> tuple[str, bytes]:
    """(file key, bytes) of one hostile IDX file of class ``kind``, among three good ones."""
    arrays = good_mnist()
    key = draw(st.sampled_from(list(MNIST_FILES)))
    good = idx_bytes(arrays[key])
    gz = True
    if kind == "truncated":
        data = good[: draw(st.integers(0, len(good) - 1))]
    elif kind == "lying_header":
        shape = list(arrays[key].shape)
        shape[draw(st.integers(0, len(shape) - 1))] = draw(st.sampled_from([0, 5, 2**32 - 1]))
        data = idx_bytes(arrays[key], tuple(shape))
    elif kind == "wrong_type":
        data = idx_bytes(arrays[key], kind=draw(st.sampled_from([0x09, 0x0B, 0x0D, 0x0E])))
    elif kind == "no_dimensions":
        data = idx_bytes(np.zeros(1), ())
    elif kind == "labels_out_of_range":
        key = draw(st.sampled_from(["y_train", "y_test"]))
        labels = arrays[key].copy()
        labels[draw(st.integers(0, len(labels) - 1))] = draw(st.integers(10, 255))
        data = idx_bytes(labels)
    elif kind == "swapped_files":
        other = {"x_train": "y_train", "y_train": "x_train", "x_test": "y_test",
                 "y_test": "x_test"}[key]
        data = idx_bytes(arrays[other])
    elif kind == "few_examples":
        key = draw(st.sampled_from(["x_train", "x_test"]))
        n = draw(st.integers(0, 1 if key == "x_train" else 0))
        data = idx_bytes(arrays[key][:n])
    elif kind == "corrupted_gzip":  # damaged past the 10-byte header (its time stamp is free)
        stream = damage(draw, gzip.compress(good), start=10)
        assume(not _gunzips_to(stream, good))  # a changed padding bit changes nothing
        cut = draw(st.one_of(st.just(len(stream)), st.integers(10, len(stream) - 1)))
        data, gz = stream[:cut], False
    elif kind == "gzip_bomb":
        data = idx_bytes(np.zeros((SMALL_LIMIT + draw(st.integers(1, SMALL_LIMIT)),)))
    else:
        data = b""
    return key, (gzip.compress(data) if gz else data)


# --- running ----------------------------------------------------------------------------

def spec_for(tmp: Path, dataset: dict[str, Any]) -> Path:
    spec = copy.deepcopy(TINY)
    spec["dataset"] = {**dataset, "validation": 2}
    spec["training"].update(batch_size=4, duration="2it", eval_every=1)
    spec["pruning"]["levels"] = 1
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def runs_in(uri: str, store: Path) -> int:
    """How many runs the store holds (none when it was never created)."""
    if not store.exists():
        return 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids)) if ids else 0


def assert_refused(tmp: Path, spec: Path, names: str, problem: str) -> list[str]:
    """Both ``run --dry-run`` and ``run``: exit 2, one to three error lines naming the
    file and the ``problem`` (a pattern), no traceback, no run in the store."""
    store = tmp / "store.db"
    uri = f"sqlite:///{store}"
    for args in (["run", str(spec), "--dry-run"], ["run", str(spec), "--tracking-uri", uri]):
        result = CliRunner().invoke(app, args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert 1 <= len(lines) <= 3 and all(line.startswith("error: ") for line in lines), lines
        assert names in lines[0] and re.search(problem, lines[0]), (problem, lines)
    assert runs_in(uri, store) == 0
    return lines


def refused_npz(tmp: Path, kind: str, data: bytes) -> list[str]:
    path = tmp / "data.npz"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        if kind == "zip_bomb":
            patch.setattr(files, "data_limit", lambda: SMALL_LIMIT)
        return assert_refused(tmp, spec_for(tmp, {"name": "npz", "path": str(path)}), str(path),
                              NPZ_PROBLEMS[kind])


def refused_idx(tmp: Path, kind: str, key: str, data: bytes) -> list[str]:
    folder = tmp / "mnist"
    folder.mkdir(exist_ok=True)
    for name, array in good_mnist().items():
        (folder / f"{MNIST_FILES[name]}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    (folder / f"{MNIST_FILES[key]}.gz").write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        if kind == "gzip_bomb":
            patch.setattr(files, "data_limit", lambda: SMALL_LIMIT)
        return assert_refused(tmp, spec_for(tmp, {"name": "mnist", "root": str(folder),
                                                  "download": False}), str(folder),
                              IDX_PROBLEMS[kind])


# --- tests ------------------------------------------------------------------------------

def test_the_good_files_run(tmp_path):
    """The generators' good data passes, so a refusal below is about the damage."""
    path = tmp_path / "data.npz"
    n = 24  # the smallest good set the generator draws
    path.write_bytes(npz_bytes(x=np.random.default_rng(0).normal(size=(n, 4)), y=np.arange(n) % 3))
    npz_spec = spec_for(tmp_path, {"name": "npz", "path": str(path)})
    assert CliRunner().invoke(app, ["run", str(npz_spec), "--dry-run"]).exit_code == 0
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, array in good_mnist().items():
        (folder / f"{MNIST_FILES[name]}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    mnist = spec_for(tmp_path, {"name": "mnist", "root": str(folder), "download": False})
    result = CliRunner().invoke(app, ["run", str(mnist), "--dry-run"])
    assert result.exit_code == 0, result.output


def test_every_class_says_what_its_error_names():
    assert sorted(NPZ_PROBLEMS) == sorted(NPZ_CLASSES)


@pytest.mark.parametrize("kind", sorted(NPZ_CLASSES))
@FUZZ
@given(data=st.data())
def test_hostile_npz_files_are_refused_cleanly(kind, data, tmp_path):
    refused_npz(tmp_path, kind, data.draw(NPZ_CLASSES[kind]))


@pytest.mark.parametrize("kind", IDX_CLASSES)
@FUZZ
@given(data=st.data())
def test_hostile_idx_files_are_refused_cleanly(kind, data, tmp_path):
    key, payload = data.draw(idx_case(kind))
    refused_idx(tmp_path, kind, key, payload)


@settings(FUZZ, max_examples=150)
@given(arrays=good_arrays(), compressed=st.booleans(), data=st.data())
def test_damage_anywhere_in_an_archive_is_refused_or_harmless(arrays, compressed, data,
                                                              tmp_path):
    """Bytes changed anywhere (headers, names, sizes, the central directory): the reader
    refuses the file with a DataError, or every array it returns is the original one (a
    damaged name leaves that array out: the loader then reports it missing)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    path = tmp_path / "data.npz"
    path.write_bytes(damage(data.draw, buffer.getvalue()))
    try:
        read = files.read_npz(path, ("x", "y", "x_test", "y_test"))
    except DataError as error:
        assert str(path) in str(error) and "\n" not in str(error)
        return
    assert set(read) <= set(arrays)
    assert all(np.array_equal(read[k], arrays[k]) and read[k].dtype == arrays[k].dtype
               for k in read)


def test_a_zip_declaring_a_terabyte_is_refused_before_reading(tmp_path):
    """The real bound (half the machine's memory), from the zip's directory alone: the
    member's bytes are never read (they are not even an array)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"not an array")
        archive.writestr("y.npy", npy_bytes(np.arange(4)))
        archive.filelist[0].file_size = 2**40  # written to the central directory as zip64
    path = tmp_path / "bomb.npz"
    path.write_bytes(buffer.getvalue())
    # refused for its size or, first, for its compression ratio: either way unread
    with pytest.raises(DataError, match=r"(arrays 'x', 'y' hold 1024.0 GiB or more once "
                                        r"decompressed, over the .* allowed|array 'x': refused "
                                        r"as a decompression bomb .* to 1024.0 GiB)"):
        files.read_npz(path, ("x", "y"))
