"""Streaming throughput of the imagefolder dataset: images/s with 0, 1, 2, ... loader workers.

Writes a temporary folder of JPEG images of ImageNet's typical size, then streams training
batches through ``StreamedSplits.batches`` (decode, random resized crop to 224, flip,
normalise: the ImageNet recipe) with each number of workers in turn, round after round,
and reports the median images/s of each. The table goes to the ``streaming`` section of
RESULTS.md.

    python benchmarks/streaming.py --workers 0,1,2 --images 384 --batch 32
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_jpegs(root: Path, count: int, classes: int, size: tuple[int, int]) -> None:
    """``count`` smooth random JPEG images (quality 90) in ``classes`` class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    for i in range(count):
        folder = root / "train" / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        # Coarse noise scaled up: compresses and decodes like a photograph, not like static.
        coarse = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize(size, Image.BILINEAR).save(folder / f"{i}.jpg",
                                                                  quality=90)
    for c in range(classes):  # the dataset needs a test folder with the same classes
        (root / "val" / f"c{c}").mkdir(parents=True, exist_ok=True)
        source = next((root / "train" / f"c{c}").iterdir())
        (root / "val" / f"c{c}" / source.name).write_bytes(source.read_bytes())


def images_per_second(root: Path, workers: int, batch: int, batches: int, size: int) -> float:
    """Steady-state images/s of one stream: the first batch (workers starting) untimed."""
    from lth_suite.builtin.datasets import ImageFolderParams
    from lth_suite.builtin.datasets.imagefolder import load_imagefolder
    from lth_suite.training.streaming import split_streamed

    params = ImageFolderParams(root=root, image_size=size, storage="stream", workers=workers,
                               validation=1)
    data = split_streamed(load_imagefolder(params, seed=0), params)
    stream = data.batches(batch, [0], batches + 1)
    stream(0)
    started = time.perf_counter()
    for iteration in range(1, batches + 1):
        stream(iteration)
    return batch * batches / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    """Measure, print the table, write RESULTS.md's streaming section."""
    import torch
    from results_file import merge_section

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="0,1,2", help="worker counts, comma-separated")
    parser.add_argument("--images", type=int, default=384, help="JPEG images written")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    torch.set_num_threads(1)  # decoding is the work measured; one thread for the main process
    started, load_before = time.time(), os.getloadavg()[0]
    rates: dict[int, list[float]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_jpegs(root, args.images, 10, (500, 375))
        for _ in range(args.rounds):  # interleaved: every count sees the same drift
            for workers in counts:
                rates[workers].append(images_per_second(root, workers, args.batch,
                                                        args.batches, args.image_size))
    lines = ["| loader workers | images/s (median) | rounds | vs 0 workers |",
             "| ---: | ---: | --- | ---: |"]
    base = statistics.median(rates[counts[0]])
    for workers in counts:
        median = statistics.median(rates[workers])
        rounds = ", ".join(f"{r:,.0f}" for r in rates[workers])
        lines.append(f"| {workers} | {median:,.0f} | {rounds} | {median / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    section = [
        "## Streaming (imagefolder)",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {os.cpu_count()} cores; torch {torch.__version__}; load average (1 min) "
        f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
        f"the run took {time.time() - started:.0f} s",
        "- command: `" + " ".join(["python", "benchmarks/streaming.py",
                                   *map(shlex.quote, argv or sys.argv[1:])]) + "`",
        *(f"- note: {note}" for note in args.note),
        "",
        table,
        "",
        f"{args.images} JPEG images of 500x375 (quality 90) streamed as training batches of "
        f"{args.batch}: decode, random resized crop to {args.image_size}, flip, normalise, "
        "collate; the first batch of each stream (workers starting) is not timed, then "
        f"{args.batches} batches are. Worker counts take turns, round after round; each "
        "figure is the median of its rounds.",
    ]
    earlier = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(merge_section(earlier, "streaming", "\n".join(section)))
    print(f"wrote the streaming section of {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
