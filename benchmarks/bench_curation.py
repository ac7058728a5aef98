"""Benchmark curation on the real MNIST (70,000 images, SQLite).

- apply: 10,000 decisions from one CSV file (4,000 relabels, 2,000 exclusions,
  4,000 tags, on distinct random images), all or nothing, through
  ``Catalog.apply``; each run on a fresh copy of the same freshly ingested
  catalog, best of three.
- counts over all 70,000 images once those decisions are in: plain, with
  ``--without-tag``, with ``--tag``, and ``count --by label`` (current labels);
  each the median of 20 after one warm-up. The plain count before any decision
  is the baseline the filtered counts are compared with.

    python benchmarks/bench_curation.py [--mnist DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from catalog import Catalog

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
DECISIONS = 10_000
RUNS = 3


def median_ms(fn: Callable[[], object], repeat: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def write_decisions(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    picks = rng.choice(70_000, DECISIONS, replace=False)
    lines = ["split,index,action,label,tag,note"]
    for n, pick in enumerate(picks.tolist()):
        split, index = ("train", pick) if pick < 60_000 else ("test", pick - 60_000)
        if n < 4_000:
            lines.append(f"{split},{index},relabel,{int(rng.integers(10))},,bench")
        elif n < 6_000:
            lines.append(f"{split},{index},exclude,,,bench")
        else:
            lines.append(f"{split},{index},tag,,reviewed,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mnist-catalog-curation-"))
    try:
        base = work / "base.db"
        with Catalog.open(base) as catalog:
            catalog.ingest(args.mnist, dataset="mnist")
            plain_before = median_ms(lambda: catalog.select().count())
        decisions = work / "decisions.csv"
        write_decisions(decisions)
        applied: list[float] = []
        for run in range(RUNS):
            copy = work / f"run{run}.db"
            shutil.copy(base, copy)
            with Catalog.open(copy) as catalog:
                started = time.perf_counter()
                summary = catalog.apply(decisions, by="bench")
                applied.append(time.perf_counter() - started)
                assert summary.recorded + summary.unchanged == DECISIONS, summary
        with Catalog.open(work / "run0.db") as catalog:
            plain = median_ms(lambda: catalog.select().count())
            without = median_ms(lambda: catalog.select(without_tag="reviewed").count())
            tagged = median_ms(lambda: catalog.select(tag="reviewed").count())
            by_label = median_ms(lambda: catalog.select().counts(("label",)))
            n_without = catalog.select(without_tag="reviewed").count()
        print(
            f"Machine: {platform.machine()}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {platform.system()}\n"
        )
        print("| measurement | time |\n|---|---:|")
        print(
            f"| apply {DECISIONS:,} decisions from CSV (best of {RUNS}: "
            f"{', '.join(f'{s:.2f}' for s in applied)} s) | {min(applied):.2f} s |"
        )
        print(f"| count all 70,000, no decisions yet (baseline) | {plain_before:.1f} ms |")
        print(f"| count all, 10,000 decisions in (2,000 excluded) | {plain:.1f} ms |")
        print(f"| count --without-tag reviewed ({n_without:,}) | {without:.1f} ms |")
        print(f"| count --tag reviewed (4,000) | {tagged:.1f} ms |")
        print(f"| count --by label, current labels | {by_label:.1f} ms |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
