"""Rebuild the identity registry shipped in ``catalog/identity/data`` from the real MNIST files.

Usage::

    python scripts/build_identity_registry.py MNIST_FOLDER [--out catalog/identity/data]

``MNIST_FOLDER`` holds the four genuine IDX files (gzipped or not). The pixels of
each split are checked against the digests in :mod:`catalog.sources.fingerprints` before
anything is written, so the registry can only be built from genuine MNIST.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from catalog.identity.registry import DATA_DIR, RefBlock, build_registry, save_registry
from catalog.sources.fingerprints import known_split
from catalog.sources.idx import read_idx

BLOCK = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with the four MNIST IDX files")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="where to write the files")
    args = parser.parse_args()

    decoded = read_idx(args.folder)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for batch in decoded.batches:
        parts.setdefault(batch.split, []).append((batch.pixels, batch.labels))
    splits = {
        name: (np.concatenate([p for p, _ in items]), np.concatenate([y for _, y in items]))
        for name, items in sorted(parts.items())
    }
    for name, (pixels, labels) in splits.items():
        known = known_split("mnist", name)
        if known is None or hashlib.sha256(pixels.tobytes()).hexdigest() != known.pixels_sha256:
            msg = f"{args.folder}: the {name} pixels are not genuine MNIST's"
            raise SystemExit(msg)
        if hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest() != known.labels_sha256:
            msg = f"{args.folder}: the {name} labels are not genuine MNIST's"
            raise SystemExit(msg)

    class Blocks:
        def __iter__(self) -> Iterator[RefBlock]:
            for name, (pixels, labels) in splits.items():  # canonical order: split, index
                for start in range(0, len(pixels), BLOCK):
                    stop = min(start + BLOCK, len(pixels))
                    yield RefBlock(
                        name, np.arange(start, stop, dtype=np.int64),
                        labels[start:stop].astype(np.int64), pixels[start:stop],
                    )  # fmt: skip

    registry = build_registry("mnist", Blocks())
    for path in save_registry(registry, args.out):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
