"""Measure ``audit --check files`` on a folder export of the real MNIST.

    python benchmarks/files_check.py [--mnist DIR] [--work DIR] [--repeats N]

The 70,000 MNIST images are ingested into a SQLite catalog and exported as a
PNG folder once; then the files check (every recorded file read, hashed and
compared with the catalog, and the export folder walked for unknown files) is
timed in a fresh process, against its floor: the same files read and hashed by
one plain loop (``os.open``/``os.read``/``hashlib.sha256``, no catalog, no
threads). Both are timed warm (files in the page cache) and, where this process
may write ``/proc/sys/vm/drop_caches`` (root on Linux), cold, which is how an
audit meets files exported days ago. Best of ``--repeats``, alternating.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def step_prepare(mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    with Catalog.open(work / "catalog.db") as catalog:
        if not (work / "ingested").exists():
            catalog.ingest(mnist, dataset="mnist")
            (work / "ingested").touch()
        if not (work / "out" / "manifest.csv").exists():
            catalog.select().export(work / "out")
    return {}


def step_check(work: Path) -> dict[str, object]:
    from catalog import Catalog

    with Catalog.open(work / "catalog.db") as catalog:
        cpu, started = cpu_seconds(), time.perf_counter()
        report = catalog.audit(checks=["files"])
        seconds = time.perf_counter() - started
    findings = [f.code for f in report.findings if f.check == "files"]
    assert findings == [], findings
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu}


def step_floor(work: Path) -> dict[str, object]:
    import sqlite3

    with sqlite3.connect(work / "catalog.db") as connection:
        files = connection.execute("SELECT path, size FROM exported_files").fetchall()
    cpu, started = cpu_seconds(), time.perf_counter()
    for path, size in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            hashlib.sha256(os.read(fd, size + 1)).hexdigest()
        finally:
            os.close(fd)
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu,
            "files": len(files)}  # fmt: skip


def drop_caches() -> bool:
    """Empty the page cache (needs root); False where that is not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def run_step(step: str, work: Path, mnist: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--step", step, "--work", str(work), "--mnist", str(mnist)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", choices=["prepare", "check", "floor"])
    args = parser.parse_args()
    if args.step:
        steps = {
            "prepare": lambda: step_prepare(args.mnist, args.work),
            "check": lambda: step_check(args.work),
            "floor": lambda: step_floor(args.work),
        }
        print(json.dumps(steps[args.step]()))
        return
    if not (args.mnist / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"MNIST files not found in {args.mnist}")
    work = args.work or Path(tempfile.mkdtemp(prefix="mnist-catalog-files-"))
    work.mkdir(parents=True, exist_ok=True)
    print("ingest and export (once) ...", file=sys.stderr)
    run_step("prepare", work, args.mnist)
    cold = drop_caches()
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    for round_ in range(args.repeats):
        print(f"round {round_ + 1}/{args.repeats} ...", file=sys.stderr)
        for step in ("check", "floor"):
            for cache in ("cold", "warm") if cold else ("warm",):
                if cache == "cold":
                    drop_caches()
                results.setdefault((step, cache), []).append(run_step(step, work, args.mnist))
    files = results["floor", "warm"][0]["files"]
    print(f"\nFiles check of {files:,} exported files, best of {args.repeats} runs.\n")
    print("| run | page cache | wall | CPU |")
    print("|---|---|---:|---:|")
    names = {"check": "`audit --check files`", "floor": "floor: one loop of os.read + sha256"}
    for (step, cache), runs in results.items():
        best = min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]
        print(f"| {names[step]} | {cache} | {best['seconds']:.2f} s | {best['cpu']:.2f} s |")
    if not cold:
        print("\n(cold runs skipped: /proc/sys/vm/drop_caches is not writable here)")


if __name__ == "__main__":
    main()
