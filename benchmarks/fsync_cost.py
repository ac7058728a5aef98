"""What durable exports cost: the same export with fsync (the default) and with ``--no-fsync``.

Both sides export the same selection with the same jobs into fresh folders,
alternating (fsync, no-fsync, fsync, no-fsync, ...) so that the disk's mood
falls on both; every run is reported and the best of each side compared.

    python benchmarks/fsync_cost.py                 # 20,000 generated images, 3 rounds
    python benchmarks/fsync_cost.py --mnist DIR     # the real MNIST (70,000)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import write_source

from catalog import Catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, help="Folder with the real MNIST gz files.")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mnist-catalog-fsync-") as tmp:
        work = Path(tmp)
        source = args.mnist or write_source(work / "source", args.images)
        with Catalog.open(work / "c.db") as catalog:
            catalog.ingest(source, dataset="bench")
            selection = catalog.select(dataset="bench")
            n = selection.count()
            runs: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(args.rounds):
                for fsync in (True, False):
                    out = work / f"out-{fsync}-{round_}"
                    began = time.perf_counter()
                    selection.export(out, jobs=args.jobs, fsync=fsync)
                    runs[fsync].append(time.perf_counter() - began)
                    shutil.rmtree(out)
    best = {fsync: min(times) for fsync, times in runs.items()}
    for fsync, label in ((True, "fsync (default)"), (False, "--no-fsync")):
        times = ", ".join(f"{t:.2f}" for t in runs[fsync])
        print(f"export {n:,} PNG, {args.jobs} jobs, {label}: best {best[fsync]:.2f} s ({times})")
    print(f"fsync costs {best[True] / best[False]:.2f}x the export without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
