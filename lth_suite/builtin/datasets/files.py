"""Reading a user's data files without trusting them: .npz archives and IDX files.

Both readers bound what they decompress before decompressing it and never unpickle, so
a hostile file ends in a one-line ``DataError`` naming the file, not in a traceback, a
memory error or code execution.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from ...api import DataError, DataMissing
from ..resources import memory_room

FALLBACK_LIMIT = 8 * 2**30  # where the machine's memory cannot be read
CHUNK = 2**24  # bytes per gzip read
# Real arrays (images, features, labels) deflate a few times at most; deflate itself stops
# near 1032-fold. A large member beyond this ratio is a bomb, refused before it is inflated.
BOMB_RATIO, BOMB_BYTES = 200, 64 * 2**20
# What a damaged file raises while it is read: a bad CRC, a broken deflate or gzip stream,
# an unknown compression method, malformed fields of the zip's directory.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, ValueError,
               struct.error)


def _limits() -> list[tuple[int, str]]:
    """Every bound on what a data file may expand to, in bytes, with its name."""
    found = []
    try:
        found.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2,
                      "half this machine's memory"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        found.append((FALLBACK_LIMIT, "the default limit"))
    room = memory_room()
    if room is not None:
        found.append(room)
    return found


def data_limit() -> int:
    """The most bytes a data file may expand to: the smallest of half the machine's
    physical memory, the memory available, the cgroup's room and this process's
    address-space room (``builtin.resources``).

    The arrays are converted and copied after reading, so a file that expands to more
    could not be trained on anyway; refusing it before decompressing keeps a zip or gzip
    bomb from exhausting the memory.
    """
    return min(limit for limit, _ in _limits())


def _limit_name(limit: int) -> str:
    return next((name for bound, name in sorted(_limits()) if bound == limit), "the limit")


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (cut short), or its type's name."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _too_big(path: Path, what: str, count: int, limit: int) -> DataError:
    return DataError(f"{path}: {what} {_size(count)} or more once decompressed, over the "
                     f"{_size(limit)} allowed ({_limit_name(limit)})")


def _bomb(path: Path, info: zipfile.ZipInfo) -> DataError | None:
    """A member that expands more than any real dataset does: refused unread."""
    ratio = info.file_size / max(1, info.compress_size)
    if info.file_size > BOMB_BYTES and ratio > BOMB_RATIO:
        return DataError(f"{path}, array '{info.filename.removesuffix('.npy')}': refused as a "
                         f"decompression bomb ({_size(info.compress_size)} expanding "
                         f"{ratio:.0f}-fold to {_size(info.file_size)})")
    return None


# --- .npz -----------------------------------------------------------------------------

def _kind_of_file(head: bytes) -> str | None:
    """What a file that is not a zip archive looks like, for the error message."""
    if not head:
        return "is empty"
    if head.startswith(npy.MAGIC_PREFIX):
        return "is a single .npy array, not an .npz archive: save with np.savez(path, x=..., y=...)"
    if head[:1] == b"\x80":  # every pickle since protocol 2 starts with PROTO (0x80)
        return "holds pickled data, which lth-suite never loads: save arrays with np.savez"
    return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                 name: str) -> np.ndarray:
    """One .npy member, its header checked against its size before its data is read."""
    if info.flag_bits & 0x1:
        raise DataError(f"{path}, array '{name}': is encrypted")
    with archive.open(info) as member:
        shape, fortran, dtype = _npy_header(member, path, name)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise DataError(f"{path}, array '{name}': holds Python objects or records (dtype "
                            f"{dtype}); lth-suite reads plain numeric arrays and never unpickles")
        expected = math.prod(shape) * dtype.itemsize
        if expected != info.file_size - member.tell():
            raise DataError(f"{path}, array '{name}': is damaged: its header promises shape "
                            f"{shape} of {dtype} ({expected} bytes) but it holds "
                            f"{info.file_size - member.tell()}")
        data = member.read(expected)  # reaching the end checks the member's CRC
    if len(data) != expected:
        raise DataError(f"{path}, array '{name}': is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _npy_header(member: IO[bytes], path: Path, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a .npy header, refusing anything odd in it."""
    try:
        version = npy.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {version}")
        # 3.0 differs from 2.0 only in UTF-8 field names, and records are refused anyway.
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read(member)
    except (ValueError, TypeError, SyntaxError, RecursionError, OverflowError) as exc:
        raise DataError(f"{path}, array '{name}': is not a readable .npy array "
                        f"({_first_line(exc)})") from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DataError(f"{path}, array '{name}': has an invalid shape {shape}")
    return tuple(shape), bool(fortran), dtype


def read_npz(path: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an .npz that has them (others are not read), never unpickled."""
    if not path.is_file():
        raise DataMissing(f"dataset.path: {path} does not exist or is not a file")
    try:
        if not zipfile.is_zipfile(path):
            with path.open("rb") as file:
                head = file.read(8)
            problem = _kind_of_file(head) or "is not an .npz archive (a zip of .npy arrays) or " \
                                             "is truncated"
            raise DataError(f"{path}: {problem}")
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            wanted = [name for name in names if name in members]
            bomb = next(filter(None, (_bomb(path, members[name]) for name in wanted)), None)
            if bomb is not None:
                raise bomb
            total, limit = sum(members[name].file_size for name in wanted), data_limit()
            if total > limit:
                raise _too_big(path, "arrays " + ", ".join(f"'{n}'" for n in wanted) + " hold",
                               total, limit)
            return {name: _read_member(archive, members[name], path, name) for name in wanted}
    except READ_ERRORS as exc:
        raise DataError(f"{path}: cannot be read as an .npz archive "
                        f"({_first_line(exc)})") from None


# --- IDX ------------------------------------------------------------------------------

def _read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes, gunzipped when it ends in .gz, refusing more than ``limit``."""
    if not path.is_file():  # a FIFO would wait forever for a writer
        raise DataError(f"{path}: is not a regular file; lth-suite reads regular files only")
    try:
        if path.suffix != ".gz":
            if path.stat().st_size > limit:
                raise _too_big(path, "the file holds", path.stat().st_size, limit)
            return path.read_bytes()
        chunks, total = [], 0
        with gzip.open(path, "rb") as stream:
            # In chunks: one read of limit + 1 bytes would allocate that much up front.
            while total <= limit and (chunk := stream.read(CHUNK)):
                chunks.append(chunk)
                total += len(chunk)
    except READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read ({_first_line(exc)})") from None
    if total > limit:
        raise _too_big(path, "the file holds", total, limit)
    return b"".join(chunks)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format) of unsigned bytes, gzipped or not."""
    raw = _read_bounded(path, data_limit())
    if not raw:
        raise DataError(f"{path}: is empty")
    # Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        hint = " (it is gzipped: name it .gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise DataError(f"{path}: not an IDX file of unsigned bytes{hint}")
    dims = raw[3]
    if dims == 0:
        raise DataError(f"{path}: an IDX file of no dimensions holds no examples")
    if len(raw) < 4 + 4 * dims:
        raise DataError(f"{path}: truncated IDX file (header of {dims} dimensions)")
    shape = struct.unpack(f">{dims}I", raw[4: 4 + 4 * dims])
    found = len(raw) - 4 - 4 * dims
    if found != math.prod(shape):  # exact ints: a lying header cannot overflow the check
        raise DataError(f"{path}: its header promises shape {shape} ({math.prod(shape)} bytes) "
                        f"but it holds {found}: truncated or not this file")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
