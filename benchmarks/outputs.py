"""Measure the training-ready outputs on the real MNIST and print a Markdown table.

    python benchmarks/outputs.py [--mnist DIR] [--work DIR] [--repeats N]

For each output format (``folder`` PNG files, ``idx``, ``npz``, ``parquet``,
``webdataset``) the 70,000 images of MNIST are exported from a catalog on
SQLite, in a fresh process, with every core working (worker processes for the
folder, PNG-encoding threads for parquet and shards), then read back for one
epoch by the usual reader of that format, in another fresh process, to uint8
arrays and labels:

- folder: ``os.scandir`` + Pillow, one file per image;
- idx: ``gzip`` + ``numpy.frombuffer``;
- npz: ``numpy.load``;
- parquet: ``pyarrow.parquet`` row group by row group, Pillow for the PNGs;
- webdataset: ``tarfile`` member by member, Pillow for the PNGs.

Each figure is the best of ``--repeats`` runs (formats take turns, so a slow
moment of the disk or of other work on the machine hits all of them alike);
the CPU column is user + system time of the process and its workers in that
run. Disk use is the sum of the data files' allocated blocks, then the size
of ``manifest.csv``. Reads are warm (the files were just written). The floor is
the least work any export does: the pixels and labels read from the catalog
into numpy (``.to_numpy()``). Two parts of a parquet or shard export are timed
on their own beside it, to show where its floor is: ``blocks``, the export's own
read (pixels and every manifest field, block by block, in one process, as a
container export reads them) and ``pngs``, the PNGs and their sha256 of the same
70,000 images encoded in one process (the export spreads them over worker
processes).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
OUTPUTS = ["idx", "npz", "parquet", "webdataset", "folder"]
GOALS = {"idx": 1.0, "parquet": 1.0, "webdataset": 2.0}


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def step_write(output: str, work: Path) -> dict[str, object]:
    from catalog import Catalog

    out = work / f"out-{output}"
    shutil.rmtree(out, ignore_errors=True)
    catalog = Catalog.open(work / "catalog.db")
    selection = catalog.select()
    cpu, started = cpu_seconds(), time.perf_counter()
    result = selection.export(out, output=output)
    seconds = time.perf_counter() - started
    assert result.count == 70_000, result
    data = [p for p in out.rglob("*") if p.is_file() and p.name != "manifest.csv"]
    used = sum(p.stat().st_blocks * 512 for p in data)
    manifest = (out / "manifest.csv").stat().st_size
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu, "bytes": used, "files": len(data),
            "manifest": manifest}  # fmt: skip


def step_floor(work: Path) -> dict[str, object]:
    """The floor of an export: the selection's pixels and labels read into numpy."""
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    cpu, started = cpu_seconds(), time.perf_counter()
    x, _ = catalog.select().to_numpy()
    assert len(x) == 70_000
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}


def step_blocks(work: Path) -> dict[str, object]:
    """The read of a container export: pixels and manifest fields, as blocks."""
    from sqlalchemy.orm import Session

    from catalog import Catalog
    from catalog.select.reads import iter_pixel_blocks

    catalog = Catalog.open(work / "catalog.db")
    selection = catalog.select()
    cpu, started = cpu_seconds(), time.perf_counter()
    with Session(catalog.engine) as session:
        n = sum(len(block) for block in iter_pixel_blocks(session, selection.selection))
    assert n == 70_000
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}


def step_pngs(work: Path) -> dict[str, object]:
    """The PNGs of 70,000 images and their sha256, encoded in this one process."""
    from catalog import Catalog
    from catalog.export.pngs import encode_with_digests

    x, _ = Catalog.open(work / "catalog.db").select().to_numpy()
    cpu, started = cpu_seconds(), time.perf_counter()
    for start in range(0, len(x), 4096):
        encode_with_digests(x[start : start + 4096])
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu}


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def read_folder(out: Path) -> tuple[int, int]:
    n = checksum = 0
    for split in ("train", "test"):
        for entry in os.scandir(out / split):
            pixels = _png(Path(entry.path).read_bytes())
            label = int(entry.name.split("_")[1].split(".")[0])
            n += 1
            checksum += int(pixels[14, 14]) + label
    return n, checksum


def read_idx(out: Path) -> tuple[int, int]:
    n = checksum = 0
    for prefix in ("train", "t10k"):
        images = gzip.decompress((out / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
        labels = gzip.decompress((out / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
        x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 28, 28)
        y = np.frombuffer(labels, np.uint8, offset=8)
        n += len(x)
        checksum += int(x[:, 14, 14].sum()) + int(y.sum())
    return n, checksum


def read_npz(out: Path) -> tuple[int, int]:
    with np.load(out / "mnist.npz") as data:
        x = np.concatenate([data["x_train"], data["x_test"]])
        y = np.concatenate([data["y_train"], data["y_test"]])
    return len(x), int(x[:, 14, 14].sum()) + int(y.sum())


def read_parquet(out: Path) -> tuple[int, int]:
    import pyarrow.parquet as pq

    n = checksum = 0
    for split in ("train", "test"):
        file = pq.ParquetFile(out / f"{split}.parquet")
        for group in range(file.num_row_groups):
            table = file.read_row_group(group)
            images = table.column("image").combine_chunks().field("bytes").to_pylist()
            labels = table.column("label").to_pylist()
            for data, label in zip(images, labels, strict=True):
                n += 1
                checksum += int(_png(data)[14, 14]) + label
    return n, checksum


def read_webdataset(out: Path) -> tuple[int, int]:
    n = checksum = 0
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            pixels = None
            for member in tar:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if member.name.endswith(".png"):
                    pixels = _png(data)
                elif member.name.endswith(".cls"):
                    assert pixels is not None
                    n += 1
                    checksum += int(pixels[14, 14]) + int(data)
    return n, checksum


READERS = {
    "folder": read_folder,
    "idx": read_idx,
    "npz": read_npz,
    "parquet": read_parquet,
    "webdataset": read_webdataset,
}


def step_read(output: str, work: Path) -> dict[str, object]:
    cpu, started = cpu_seconds(), time.perf_counter()
    n, checksum = READERS[output](work / f"out-{output}")
    return {"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "images": n,
            "checksum": checksum}  # fmt: skip


def step_ingest(mnist: Path, work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    if not catalog.datasets():
        catalog.ingest(mnist, dataset="mnist")
    return {}


def run_step(step: str, output: str, work: Path, mnist: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--step", step, "--output", output, "--work", str(work),
               "--mnist", str(mnist)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", choices=OUTPUTS)
    parser.add_argument("--step", choices=["ingest", "floor", "blocks", "pngs", "write", "read"])
    parser.add_argument("--output", choices=OUTPUTS, default="idx")
    args = parser.parse_args()
    if args.step:
        if args.step == "ingest":
            result = step_ingest(args.mnist, args.work)
        elif args.step == "floor":
            result = step_floor(args.work)
        elif args.step == "blocks":
            result = step_blocks(args.work)
        elif args.step == "pngs":
            result = step_pngs(args.work)
        elif args.step == "write":
            result = step_write(args.output, args.work)
        else:
            result = step_read(args.output, args.work)
        print(json.dumps(result))
        return
    if not (args.mnist / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"MNIST files not found in {args.mnist}")
    work = args.work or Path(tempfile.mkdtemp(prefix="mnist-catalog-outputs-"))
    work.mkdir(parents=True, exist_ok=True)
    run_step("ingest", "idx", work, args.mnist)
    outputs = args.only or OUTPUTS
    writes: dict[str, list[dict[str, object]]] = {}
    reads: dict[str, list[dict[str, object]]] = {}
    floors: list[dict[str, object]] = []
    parts: dict[str, list[dict[str, object]]] = {"blocks": [], "pngs": []}
    for round_ in range(args.repeats):
        floors.append(run_step("floor", "idx", work, args.mnist))
        for part, runs in parts.items():
            runs.append(run_step(part, "idx", work, args.mnist))
        for output in outputs:
            print(f"{output} ({round_ + 1}/{args.repeats}) ...", file=sys.stderr, flush=True)
            writes.setdefault(output, []).append(run_step("write", output, work, args.mnist))
            reads.setdefault(output, []).append(run_step("read", output, work, args.mnist))
    print(table(outputs, writes, reads, floors, parts, args.repeats))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def table(
    outputs: list[str],
    writes: dict[str, list[dict[str, object]]],
    reads: dict[str, list[dict[str, object]]],
    floors: list[dict[str, object]],
    parts: dict[str, list[dict[str, object]]],
    repeats: int,
) -> str:
    def best(runs: list[dict[str, object]]) -> dict[str, object]:
        return min(runs, key=lambda r: float(r["seconds"]))  # type: ignore[arg-type]

    lines = [
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()}; best of {repeats} runs."
        ),
        "",
        "| output | export 70,000 | CPU | goal | files | on disk | read one epoch | CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    floor = best(floors)
    lines.append(
        f"| floor: `.to_numpy()` of the same 70,000 | {float(floor['seconds']):.2f} s "  # type: ignore[arg-type]
        f"| {float(floor['cpu']):.2f} s | | | | | |"  # type: ignore[arg-type]
    )
    labels = {
        "blocks": "part: a container export's read (pixels and manifest fields), one process",
        "pngs": "part: the 70,000 PNGs and their sha256, one process",
    }
    for part, runs in parts.items():
        got = best(runs)
        lines.append(
            f"| {labels[part]} | {float(got['seconds']):.2f} s "  # type: ignore[arg-type]
            f"| {float(got['cpu']):.2f} s | | | | | |"  # type: ignore[arg-type]
        )
    for output in outputs:
        w, r = best(writes[output]), best(reads[output])
        assert r["images"] == 70_000, r
        goal = f"< {GOALS[output]:.0f} s" if output in GOALS else ""
        lines.append(
            f"| {output} | {float(w['seconds']):.2f} s | {float(w['cpu']):.2f} s | {goal} "  # type: ignore[arg-type]
            f"| {w['files']:,} | {int(w['bytes']) / 1e6:.1f} MB "  # type: ignore[call-overload]
            f"+ {int(w['manifest']) / 1e6:.1f} MB manifest "  # type: ignore[call-overload]
            f"| {float(r['seconds']):.2f} s | {float(r['cpu']):.2f} s |"  # type: ignore[arg-type]
        )
    checksums = {output: best(reads[output])["checksum"] for output in outputs}
    assert len(set(checksums.values())) == 1, checksums  # every format read the same data
    return "\n".join(lines)


if __name__ == "__main__":
    main()
