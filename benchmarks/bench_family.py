"""Ingest speed of the MNIST family formats on the real MNIST (70,000 images).

    python benchmarks/bench_family.py [--mnist DIR] [--work DIR] [--repeats N]

The real MNIST is written once as each format (headerless CSV, Hugging Face
parquet, keras npz, EMNIST-style transposed IDX), then each is ingested into a
fresh SQLite catalog in its own subprocess, alternating formats, ``--repeats``
times; the table shows the best whole run of each. The baseline is the IDX
ingest of the same images; the decode column is the reader alone (no
database), so ingest - decode is what the store adds. Every figure of a table
comes from one run of this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
FORMATS = ("idx", "csv", "parquet", "npz", "emnist")


def prepare(mnist: Path, work: Path) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import write_npz
    from family_builders import emnist_members, mapping_text, write_csv, write_parquet

    from catalog.sources.idx import read_idx

    arrays: dict[str, list[list[object]]] = {}
    for batch in read_idx(mnist).batches:
        parts = arrays.setdefault(batch.split, [[], []])
        parts[0].append(batch.pixels)
        parts[1].append(batch.labels)
    import numpy as np

    (xtr, ytr), (xte, yte) = (
        (np.concatenate(arrays[s][0]), np.concatenate(arrays[s][1])) for s in ("train", "test")
    )
    write_csv(work / "csv" / "mnist_train.csv", xtr, ytr, header="none")
    write_csv(work / "csv" / "mnist_test.csv", xte, yte, header="none")
    write_parquet(work / "parquet" / "train-00000-of-00001.parquet", xtr, ytr)
    write_parquet(work / "parquet" / "test-00000-of-00001.parquet", xte, yte)
    write_npz(work / "mnist.npz", xtr, ytr, xte, yte)
    (work / "emnist").mkdir(exist_ok=True)
    for name, data in emnist_members("mnist", {"train": (xtr, ytr), "test": (xte, yte)}).items():
        (work / "emnist" / name).write_bytes(data)
    (work / "emnist" / "emnist-mnist-mapping.txt").write_text(
        mapping_text({n: (48 + n,) for n in range(10)})
    )
    return {
        "idx": mnist, "csv": work / "csv", "parquet": work / "parquet",
        "npz": work / "mnist.npz", "emnist": work / "emnist",
    }  # fmt: skip


def step(fmt: str, source: Path, work: Path) -> dict[str, float]:
    from catalog import Catalog
    from catalog.ingest.transaction import decode_source

    start = time.perf_counter()
    decoded = decode_source(source)
    images = sum(len(batch.labels) for batch in decoded.batches)
    decode = time.perf_counter() - start
    db = work / f"{fmt}-{time.time_ns()}.db"
    start = time.perf_counter()
    with Catalog.open(db) as catalog:
        result = catalog.ingest(source, dataset=fmt)
    ingest = time.perf_counter() - start
    db.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    assert result.total == images == 70_000
    size = sum(p.stat().st_size for p in (source.rglob("*") if source.is_dir() else [source]))
    return {"decode": decode, "ingest": ingest, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--step", nargs=2, metavar=("FORMAT", "SOURCE"))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-family-"))
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]), work)))
        return
    sources = prepare(args.mnist, work)
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for fmt in FORMATS:
            out = subprocess.run(
                [sys.executable, __file__, "--work", str(work), "--step", fmt, str(sources[fmt])],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            figures = json.loads(out.stdout)
            if fmt not in best or figures["ingest"] < best[fmt]["ingest"]:
                best[fmt] = figures
    base = best["idx"]["ingest"]
    print(
        f"70,000 MNIST images, SQLite, best of {args.repeats} alternating runs; {platform.processor() or platform.machine()}, Python {platform.python_version()}\n"
    )
    print("| format | source size | decode only | ingest | images/s | vs IDX ingest |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt in FORMATS:
        f = best[fmt]
        print(
            f"| {fmt} | {f['bytes'] / 1e6:.1f} MB | {f['decode']:.1f} s | {f['ingest']:.1f} s "
            f"| {70_000 / f['ingest']:,.0f} | {f['ingest'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
