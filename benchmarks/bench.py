"""Measure mnist-catalog on the real MNIST and print a Markdown table.

    python benchmarks/bench.py [--mnist DIR] [--work DIR] [--skip-audit]
    python benchmarks/bench.py --scale N [--work DIR]     # growth: see scale_bench.py
    python benchmarks/bench.py --plot PNG --work DIR      # time and memory against N

Each measurement runs in a fresh subprocess (``--step NAME``), so wall time and
peak memory (max RSS of the process and of any worker processes) are its own.
Comparisons are measured in the same run, on the same disk, and named for what
they are (a *floor* is the least work giving the same result; what the product
beats is a *baseline*):

- ingest floor: gunzip + numpy decode + the same pixel bytes written to one file;
- naive sqlite3 baseline: the same rows inserted by plain ``sqlite3`` executemany
  into a table with the same indexes (the product is faster: it is no floor);
- file-system floor: the same 70,000 files written as raw 784-byte blobs
  (``os.open``/``os.write``/``os.close``, same folders), by 1 process and by 2,
  compared with export by 1 job and by 2;
- the old recipe: unpickle ``mnist.pkl.gz`` and ``pyplot.imsave`` one JPG per
  image, on all 70,000 images, against ``export --format jpg`` of the same images.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pickle
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
SUBSET = 70_000  # images of the old-recipe comparison: all of them, nothing extrapolated
REPEATS = 4


def load_idx(mnist: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.frombuffer(
        gzip.decompress((mnist / f"{prefix}-images-idx3-ubyte.gz").read_bytes()),
        np.uint8, offset=16,
    ).reshape(-1, 28, 28)  # fmt: skip
    y = np.frombuffer(
        gzip.decompress((mnist / f"{prefix}-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8
    )
    return x, y


# --- steps (each runs in its own process) -----------------------------------------------


def step_ingest(mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    db = work / "catalog.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    catalog = Catalog.open(db)  # creating the schema is not part of the ingest
    started = time.perf_counter()
    result = catalog.ingest(mnist, dataset="mnist")
    return {"seconds": time.perf_counter() - started, "images": result.total}


def step_ingest_floor(mnist: Path, work: Path) -> dict[str, object]:
    """The least work an ingest does: gunzip, decode and write the pixel bytes to one file."""
    started = time.perf_counter()
    total = 0
    with open(work / "floor.bin", "wb") as out:
        for prefix in ("t10k", "train"):
            x, y = load_idx(mnist, prefix)
            out.write(x.tobytes())
            out.write(y.tobytes())
            total += len(x)
    return {"seconds": time.perf_counter() - started, "images": total}


def step_sqlite_baseline(mnist: Path, work: Path) -> dict[str, object]:
    db = work / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE images (id INTEGER PRIMARY KEY, dataset_id INTEGER, split TEXT, idx INTEGER,"
        " label INTEGER, height INTEGER, width INTEGER, pixels BLOB, sha256 TEXT,"
        " UNIQUE (dataset_id, split, idx))"
    )
    conn.execute("CREATE INDEX ix_split_label ON images (dataset_id, split, label)")
    conn.execute("CREATE INDEX ix_sha256 ON images (sha256)")
    total = 0
    for split, prefix in (("test", "t10k"), ("train", "train")):
        x, y = load_idx(mnist, prefix)
        blobs = [image.tobytes() for image in x]
        rows = [
            (1, split, i, label, 28, 28, blob, hashlib.sha256(blob).hexdigest())
            for i, (label, blob) in enumerate(zip(y.tolist(), blobs, strict=True))
        ]
        conn.executemany(
            "INSERT INTO images (dataset_id, split, idx, label, height, width, pixels, sha256)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        total += len(rows)
    conn.commit()
    conn.close()
    return {"seconds": time.perf_counter() - started, "images": total}


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    fn()  # warm: connection, caches
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)), result


def step_count(_mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    seconds, counts = _timed(lambda: catalog.select().counts(("split", "label")), 5)
    return {"seconds": seconds, "groups": len(counts)}  # type: ignore[arg-type]


def step_query_label(_mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    seconds, arrays = _timed(lambda: catalog.select(split="test", labels=[1]).arrays(), 20)
    train_seconds, train = _timed(lambda: catalog.select(split="train", labels=[1]).arrays(), 10)
    return {
        "seconds": seconds,
        "images": len(arrays[0]),  # type: ignore[index]
        "train_seconds": train_seconds,
        "train_images": len(train[0]),  # type: ignore[index]
    }


def step_arrays(_mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    seconds, arrays = _timed(lambda: catalog.select(split="train").arrays(), 3)
    return {"seconds": seconds, "images": len(arrays[0])}  # type: ignore[index]


def step_export(_mnist: Path, work: Path, jobs: int) -> dict[str, object]:
    from catalog import Catalog

    out = Path(tempfile.mkdtemp(prefix=f"export-{jobs}-", dir=work))
    catalog = Catalog.open(work / "catalog.db")
    started = time.perf_counter()
    result = catalog.select().export(out, jobs=jobs)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": result.written}


def step_fs_floor(mnist: Path, work: Path, processes: int = 1) -> dict[str, object]:
    """Raw files of the 70,000 images, written by ``processes`` forked processes."""
    out = Path(tempfile.mkdtemp(prefix="floor-", dir=work))
    splits = [("test", *load_idx(mnist, "t10k")), ("train", *load_idx(mnist, "train"))]
    for split, _, _ in splits:
        (out / split).mkdir(parents=True)
    started = time.perf_counter()
    children = []
    for p in range(processes):
        pid = os.fork() if processes > 1 else 0
        if pid == 0:
            for split, x, y in splits:
                for i in range(p, len(x), processes):
                    path = out / split / f"{i:06d}_{y[i]}.raw"
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.write(fd, x[i].tobytes())
                    os.close(fd)
            if processes > 1:
                os._exit(0)  # a forked child must not run the parent's cleanup
        children.append(pid)
    for pid in children if processes > 1 else []:
        os.waitpid(pid, 0)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": sum(len(x) for _, x, _ in splits)}


def _write_classic_pickle(mnist: Path, path: Path) -> None:
    """The classic mnist.pkl.gz layout: (train 50k, val 10k, test 10k) floats k/256."""
    x, y = load_idx(mnist, "train")
    tx, ty = load_idx(mnist, "t10k")

    def part(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (a.reshape(len(a), 784).astype(np.float32) / 256.0, b.astype(np.int64))

    data = (part(x[:50000], y[:50000]), part(x[50000:], y[50000:]), part(tx, ty))
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def step_old_recipe(mnist: Path, work: Path) -> dict[str, object]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    source = work / "mnist.pkl.gz"
    if not source.exists():
        _write_classic_pickle(mnist, source)
    out = Path(tempfile.mkdtemp(prefix="old-recipe-", dir=work))
    started = time.perf_counter()
    with gzip.open(source, "rb") as f:
        train, _val, _test = pickle.load(f, encoding="latin1")  # the recipe: runs any code
    for split, (x, y) in (("train", train), ("val", _val), ("test", _test)):
        folder = out / split
        folder.mkdir(parents=True)
        for i in range(len(x)):
            pyplot.imsave(folder / f"{i:06d}_{y[i]}.jpg", x[i].reshape(28, 28), cmap="gray")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": SUBSET}


def step_export_jpg_subset(_mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    out = Path(tempfile.mkdtemp(prefix="jpg-subset-", dir=work))
    catalog = Catalog.open(work / "catalog.db")
    started = time.perf_counter()
    result = catalog.select().export(out, fmt="jpg", jobs=1)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": result.written}


def step_audit(_mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    started = time.perf_counter()
    report = catalog.audit(dataset="mnist")
    return {
        "seconds": time.perf_counter() - started,
        "findings": report.counts(),
        "per_check": report.seconds,
    }


STEPS: dict[str, Callable[[Path, Path], dict[str, object]]] = {
    "ingest": step_ingest,
    "ingest-floor": step_ingest_floor,
    "sqlite-baseline": step_sqlite_baseline,
    "count": step_count,
    "query-label": step_query_label,
    "arrays": step_arrays,
    "export-1": lambda m, w: step_export(m, w, 1),
    "export-2": lambda m, w: step_export(m, w, 2),
    "fs-floor": step_fs_floor,
    "fs-floor-2": lambda m, w: step_fs_floor(m, w, 2),
    "old-recipe": step_old_recipe,
    "export-jpg-subset": step_export_jpg_subset,
    "audit": step_audit,
}


def run_step(name: str, mnist: Path, work: Path) -> dict[str, object]:
    """Run one step in a fresh interpreter; add its peak memory."""
    command = [sys.executable, __file__, "--step", name, "--mnist", str(mnist), "--work", str(work)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--step", choices=sorted(STEPS))
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--scale", type=int, help="synthesize N images and measure growth")
    parser.add_argument("--scale-step", help=argparse.SUPPRESS)
    parser.add_argument("--scale-steps", default="ingest,count,arrays,export,audit,incremental")
    parser.add_argument(
        "--audit-skip",
        default="",
        help="checks the scale audit leaves out, comma-separated (e.g. identity); recorded",
    )
    parser.add_argument("--plot", type=Path, help="draw time and memory against N from WORK")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import scale_bench

    if args.scale_step:
        scale_bench.run_step(args.scale_step, args.work)
        return
    if args.plot:
        scale_bench.plot(args.work, args.plot)
        return
    if not (args.mnist / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"MNIST files not found in {args.mnist}")
    if args.scale:
        os.environ["SCALE_AUDIT_SKIP"] = args.audit_skip  # read by the audit steps' processes
        work = args.work or Path(tempfile.mkdtemp(prefix="mnist-catalog-scale-"))
        steps = [s for s in args.scale_steps.split(",") if s]
        results = scale_bench.run_scale(Path(__file__), args.mnist, work, args.scale, steps)
        print(json.dumps(results, indent=1))
        return
    if args.step:
        result = STEPS[args.step](args.mnist, args.work)
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(result | {"rss_mb": round(self_mb), "worker_rss_mb": round(children_mb),
                                   "load": round(os.getloadavg()[0], 1)}))  # fmt: skip
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="mnist-catalog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, object]] = {}
    for name in ["ingest", "ingest-floor", "sqlite-baseline", "count", "query-label", "arrays",
                 "audit"]:  # fmt: skip
        if name == "audit" and args.skip_audit:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_step(name, args.mnist, work)
    # Writing 70,000 files is at the mercy of the disk's background work (journal
    # commits, discards of earlier deletes): run floors and exports in turn, REPEATS
    # times, keep every folder until the end, and report the best of each.
    runs: dict[str, list[dict[str, object]]] = {}
    for round_ in range(REPEATS):
        for name in ["fs-floor", "export-1", "fs-floor-2", "export-2"]:
            print(f"running {name} ({round_ + 1}/{REPEATS}) ...", file=sys.stderr, flush=True)
            runs.setdefault(name, []).append(run_step(name, args.mnist, work))
    for name, attempts in runs.items():
        best = min(attempts, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
        results[name] = best | {"all": [round(float(r["seconds"]), 2) for r in attempts]}  # type: ignore[arg-type]
    for name in ["old-recipe", "export-jpg-subset"]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_step(name, args.mnist, work)
    print(table(results))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def table(r: dict[str, dict[str, object]]) -> str:
    def s(name: str, key: str = "seconds") -> float:
        return float(r[name][key])  # type: ignore[arg-type]

    cores = os.cpu_count() or 1
    lines = [
        (
            f"Machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {platform.system()}; load average at each step "
            "in the last column"
        ),
        "",
        f"File writes: best of {REPEATS} runs, floors and exports taking turns.",
        "",
        "| measurement | time | figure | peak RSS | load |",
        "|---|---:|---|---:|---:|",
        (
            f"| ingest 70,000 images (IDX gz) | {s('ingest'):.2f} s | "
            f"{s('ingest') / s('ingest-floor'):.2f}x the floor, "
            f"{s('ingest') / s('sqlite-baseline'):.2f}x the naive sqlite3 baseline "
            f"| {r['ingest']['rss_mb']} MB | {r['ingest']['load']} |"
        ),
        (
            f"| ingest floor: gunzip + decode + pixel bytes to one file "
            f"| {s('ingest-floor'):.2f} s | | {r['ingest-floor']['rss_mb']} MB | {r['ingest-floor']['load']} |"
        ),
        (
            f"| naive sqlite3 baseline: executemany of the same rows, same indexes "
            f"| {s('sqlite-baseline'):.2f} s | | {r['sqlite-baseline']['rss_mb']} MB | {r['sqlite-baseline']['load']} |"
        ),
        f"| count --by split,label (in process) | {s('count') * 1000:.1f} ms | | | {r['count']['load']} |",
        (
            f"| query one label of one split into numpy (test, 1: {r['query-label']['images']:,}) "
            f"| {s('query-label') * 1000:.1f} ms | train, 1: {s('query-label', 'train_seconds') * 1000:.1f} ms "
            f"for {r['query-label']['train_images']:,} | | {r['query-label']['load']} |"
        ),
        f"| .arrays() of the whole train split | {s('arrays'):.2f} s | | | {r['arrays']['load']} |",
    ]
    for jobs, floor in ((1, "fs-floor"), (2, "fs-floor-2")):
        name = f"export-{jobs}"
        lines.append(
            f"| export 70,000 PNG, classic layout, {jobs} job(s) | {s(name):.2f} s | "
            f"{s(name) / s(floor):.2f}x the floor at {jobs} process(es) (runs: {r[name]['all']}) "
            f"| {r[name]['rss_mb']} MB (+ {r[name]['worker_rss_mb']} MB per worker) | {r[name]['load']} |"
        )
        lines.append(
            f"| file-system floor: 70,000 raw 784-byte files, {jobs} process(es) | {s(floor):.2f} s | "
            f"runs: {r[floor]['all']} | | {r[floor]['load']} |"
        )
    lines += [
        (
            f"| old recipe: unpickle + pyplot.imsave JPG, all {SUBSET:,} images | {s('old-recipe'):.1f} s | | "
            f"{r['old-recipe']['rss_mb']} MB | {r['old-recipe']['load']} |"
        ),
        (
            f"| export --format jpg, the same {SUBSET:,} images, 1 job | {s('export-jpg-subset'):.1f} s | "
            f"{s('old-recipe') / s('export-jpg-subset'):.1f}x faster than the old recipe | "
            f"| {r['export-jpg-subset']['load']} |"
        ),
    ]
    if "audit" in r:
        lines.append(
            f"| full audit of MNIST (7 checks) | {s('audit'):.1f} s | "
            f"{r['audit']['findings']} | {r['audit']['rss_mb']} MB | {r['audit']['load']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
