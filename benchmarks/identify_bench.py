"""How fast ``identify`` names 70,000 exact and 70,000 lossy MNIST copies, and in how much memory.

Usage::

    python benchmarks/identify_bench.py MNIST_FOLDER [--work DIR]

It writes the classic ``mnist.pkl.gz`` (train 50,000 / val 10,000 / test 10,000)
and the old recipe's folder (70,000 RGB JPEGs at quality 75, each stretched to
its own min/max), ingests both into a SQLite catalog, then times, each as a
whole run in this process:

- exact: the pickle against the shipped registry (digests only);
- lossy by signature: the folder against the shipped registry alone;
- lossy by pixels: the folder against the shipped registry with the genuine
  MNIST also in the catalog, so every match is confirmed on pixels.

and, in the same run, the floors they are compared with:

- exact floor: reading the columns identify reads for 70,000 images (id,
  split, index, label, sha256) and looking the digests up in the registry
  (``Registry.lookup``): the least work that gives the same answer for exact copies;
- lossy floor: reading the 70,000 images' pixels out of the catalog
  (``select(...).arrays()``), which any pixel-based method must do first;
- storing: what ``mnist-catalog identify`` adds to the library call, keeping the
  result per image as metadata (``Catalog.identify(store=True)``).

Each figure is the best of ``--repeat`` runs (the first run also loads the
shipped registry and builds the search index). Peak memory is the largest
resident size of the process, read after each stage.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import write_pickle_gz
from old_recipe import write_old_recipe_folder
from sqlalchemy import select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.images import Image
from catalog.identity.match import identify
from catalog.identity.registry import load_shipped
from catalog.identity.signature import digests_from_hex
from catalog.select.filters import dataset_id
from catalog.sources.idx import read_idx


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(run: Callable[[], object], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs; the load average is printed with it, since
    other work on the machine moves these figures more than anything measured."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    print(f"    (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist", type=Path)
    parser.add_argument("--work", type=Path, default=Path("identify-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for batch in read_idx(args.mnist).batches:
        parts.setdefault(batch.split, []).append((batch.pixels, batch.labels))
    x, y = (np.concatenate(a) for a in zip(*parts["train"], strict=True))
    xt, yt = (np.concatenate(a) for a in zip(*parts["test"], strict=True))
    splits = {"train": (x[:50_000], y[:50_000]), "val": (x[50_000:], y[50_000:]),
              "test": (xt, yt)}  # fmt: skip

    pickle_path = args.work / "mnist.pkl.gz"
    if not pickle_path.exists():
        write_pickle_gz(pickle_path, splits)
    folder = args.work / "mnist"
    if not (folder / "test").exists():
        start = time.perf_counter()
        write_old_recipe_folder(folder, splits)
        print(f"wrote the old recipe's folder in {time.perf_counter() - start:.1f} s")
    db = args.work / "catalog.db"
    db.unlink(missing_ok=True)
    with Catalog.open(db) as catalog:
        catalog.ingest(pickle_path, dataset="classic")
        catalog.ingest(folder, dataset="old")
        base = peak_mb()
        print(f"ingested; peak resident {base:.0f} MB")

        seconds, result = timed(lambda: identify(catalog.engine, "classic"), args.repeat)
        print(f"exact, 70,000 images:               {seconds:6.2f} s  {result.counts()}"
              f"  peak {peak_mb():.0f} MB")  # fmt: skip
        print("  " + "\n  ".join(result.summary()))

        registry = load_shipped("mnist")

        def exact_floor() -> int:
            with session_scope(catalog.engine) as session:
                rows = session.execute(
                    select(Image.id, Image.split, Image.index, Image.label, Image.sha256)
                    .where(Image.dataset_id == dataset_id(session, "classic"))
                    .order_by(Image.split, Image.index)
                ).all()
            digests = digests_from_hex([r[4] for r in rows])
            return int((registry.lookup(digests) >= 0).sum())

        seconds, found = timed(exact_floor, args.repeat)
        print(f"exact floor (read rows + lookup):   {seconds:6.2f} s  {found:,} found")
        seconds, _ = timed(lambda: catalog.identify("classic", store=True), args.repeat)
        print(f"exact, identified and stored:       {seconds:6.2f} s")

        seconds, arrays = timed(lambda: catalog.select(dataset="old").arrays(), args.repeat)
        print(f"lossy floor (read 70,000 pixels):   {seconds:6.2f} s  {arrays[0].shape}")
        del arrays

        seconds, result = timed(lambda: identify(catalog, "old"), args.repeat)
        print(f"lossy, confirmed by signature:      {seconds:6.2f} s  {result.counts()}"
              f"  peak {peak_mb():.0f} MB")  # fmt: skip
        print("  " + "\n  ".join(result.summary()))

        catalog.ingest(args.mnist, dataset="mnist")
        seconds, result = timed(lambda: identify(catalog, "old"), args.repeat)
        print(f"lossy, confirmed by pixels:         {seconds:6.2f} s  {result.counts()}"
              f"  peak {peak_mb():.0f} MB")  # fmt: skip
        print("  " + "\n  ".join(result.summary()))
        right = (result.canonical_indices == np.concatenate([
            np.arange(10_000), np.arange(50_000), np.arange(50_000, 60_000)]))  # fmt: skip
        print(f"  canonical indices right for {int(right.sum()):,} of {len(right):,}")


if __name__ == "__main__":
    main()
