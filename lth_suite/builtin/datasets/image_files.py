"""Finding and opening the images of a folder someone else made, without hanging or bursting.

torchvision's ``ImageFolder`` follows symbolic links into loops (a class folder that links
to itself multiplied the training set), opens FIFOs (a read that never returns), and
PIL decodes an image whose header claims billions of pixels before anything checks it.
Here a folder is walked once per real directory, each real file counts once, anything
that is not a regular file is refused with one line, an image is bounded by its header
before it is decoded, and names are shown escaped (a name may hold terminal escapes).
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Any

from ...api import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_PIXELS = 64_000_000  # 8000 x 8000: beyond any dataset's image, short of a bomb's claim


def shown(path: str | os.PathLike[str]) -> str:
    """A path as it may be printed: control characters (escape sequences) escaped."""
    text = os.fspath(path)
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _images(class_folder: Path, seen_dirs: set[tuple[int, int]],
            seen_files: set[tuple[int, int]]) -> list[str]:
    """The image files under one class folder, sorted as torchvision sorts them; each real
    directory entered once (no link loops) and each real file listed once."""
    walked = []
    for root, dirs, files in os.walk(class_folder, followlinks=True):
        here = os.stat(root)
        if (here.st_dev, here.st_ino) in seen_dirs:
            dirs[:] = []  # a folder already walked (a link loop), or another class's folder
            continue
        seen_dirs.add((here.st_dev, here.st_ino))
        walked.append((root, files))
    found = []
    for root, files in sorted(walked):
        for name in sorted(files):
            if not name.lower().endswith(EXTENSIONS):
                continue
            path = os.path.join(root, name)
            try:
                info = os.stat(path)
            except OSError as exc:  # a broken link, a link loop
                raise DataError(f"dataset.root: {shown(path)} cannot be opened "
                                f"({exc.strerror or exc})") from None
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"dataset.root: {shown(path)} is {_kind(info.st_mode)}, not an "
                                "image file; lth-suite reads regular files only")
            if (info.st_dev, info.st_ino) not in seen_files:
                seen_files.add((info.st_dev, info.st_ino))
                found.append(path)
    return found


def scan(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every image in ``folder``'s class folders, and the class names."""
    try:
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as exc:
        raise DataError(f"dataset.root: {shown(folder)} cannot be read "
                        f"({exc.strerror or exc})") from None
    if not classes:
        raise DataError(f"dataset.root: {shown(folder)} holds no class folder (expected "
                        "class folders of images, torchvision's ImageFolder layout)")
    samples: list[tuple[str, int]] = []
    ids = {name: _identity(folder / name) for name in [".", *classes]}
    seen_files: set[tuple[int, int]] = set()
    for label, name in enumerate(classes):
        # The root and the other classes' folders are never entered through a link: their
        # images belong to their own class, or to none.
        seen_dirs = {i for other, i in ids.items() if other != name}
        images = _images(folder / name, seen_dirs, seen_files)
        if not images:
            raise DataError(f"dataset.root: class folder {shown(folder / name)} holds no "
                            f"image ({', '.join(EXTENSIONS)})")
        samples += [(path, label) for path in images]
    return samples, classes


def open_image(path: str) -> Any:
    """The RGB image at ``path``, its size checked from the header before it is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as file, Image.open(file) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise DataError(f"dataset.root: {shown(path)} claims {width} x {height} "
                                    f"pixels, beyond the {MAX_PIXELS:,} an image may have "
                                    "(a decompression bomb?)")
                return image.convert("RGB")
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"dataset.root: {shown(path)} is refused as a decompression bomb "
                        f"({' '.join(str(exc).split())})") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:  # PIL's words for bad files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"dataset.root: {shown(path)} is not a readable image "
                        f"({shown(reason)})") from None
