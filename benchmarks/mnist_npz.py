"""Write the MNIST test set as an image npz (uint8, N x 1 x 28 x 28) the `npz` dataset reads.

specs/vit_mnist.yaml trains on it; the `npz` dataset carves its test and validation
splits. The IDX files are read from ../shared/data/mnist (or --mnist); the npz is written
under benchmarks/data/, which is not part of the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import CACHE, DEFAULT_MNIST, mnist_arrays  # noqa: E402

OUT = CACHE / "mnist_images.npz"


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST,
                        help="folder of t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    found = mnist_arrays(args.mnist)
    if found is None:
        sys.exit(f"error: no MNIST test set in {args.mnist} (--mnist FOLDER)")
    x, y = found
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, x=x[:, None], y=y)
    print(f"{args.out}: {len(y)} images {tuple(x[:, None].shape[1:])}, {len(set(y.tolist()))} classes")


if __name__ == "__main__":
    main()
