"""Load test: N client processes share one catalog for a while, on SQLite and PostgreSQL.

Each client opens the catalog itself and loops until the time is up, picking
operations at random (seeded per client) from a mix like a small team's:

- ``query``: the rows of one label in a 200-image index range;
- ``count``: images of one label, and counts by split and label;
- ``arrays``: ``.arrays()`` of one label in a 200-image index range;
- ``export``: a small export (two images per label, PNG, one job) into a folder
  of its own;
- ``decision``: relabel a random image to a random label (``Catalog.relabel``,
  author ``clientN``).

It reports operations per second, latency percentiles per operation and every
error, then checks that nothing is lost: every export a client saw succeed is on
record with exactly the files on disk, there is no export on record that no
client made, and each client's decisions are all in the log, no more, no fewer.

    python benchmarks/load.py                       # 8 clients x 60 s, both backends
    python benchmarks/load.py --clients 4 --seconds 10 --backend sqlite

PostgreSQL is reached at ``$MNIST_CATALOG_TEST_PG`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); the run uses a schema of
its own and drops it afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import random
import statistics
import struct
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog

PG_URL = os.environ.get(
    "MNIST_CATALOG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: Relative weights of the operations in the mix.
MIX = {"query": 4, "count": 4, "arrays": 3, "export": 1, "decision": 2}
IMAGES = 10_000


@dataclass
class ClientResult:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    exports: list[tuple[int, str, int]] = field(default_factory=list)  # id, root, count
    author: str = ""
    decisions: int = 0  # decisions this client saw recorded


@dataclass
class LoadReport:
    backend: str
    clients: int
    seconds: float
    ops: int
    errors: list[str]
    per_op: dict[str, dict[str, float]]
    exports: int
    lost: list[str]  # what the final check found missing or extra

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds


def write_source(folder: Path, n: int = IMAGES, seed: int = 0) -> Path:
    """A generated IDX pair (``train``) of ``n`` 28x28 digits."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as out:
        out.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels.tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb", compresslevel=1) as out:
        out.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return folder


def _operations(catalog: Catalog, out: Path, rng: random.Random, result: ClientResult) -> dict[
    str, Callable[[], None]
]:  # fmt: skip
    def window() -> tuple[int, tuple[int, int]]:
        start = rng.randrange(0, IMAGES - 200)
        return rng.randrange(10), (start, start + 200)

    def query() -> None:
        label, span = window()
        catalog.select(dataset="load", labels=label, index=span).rows()

    def count() -> None:
        label, _ = window()
        catalog.select(dataset="load", labels=label).count()
        catalog.select(dataset="load").counts()

    def arrays() -> None:
        label, span = window()
        catalog.select(dataset="load", labels=label, index=span).arrays()

    def export() -> None:
        root = out / f"e{len(result.exports)}"
        done = catalog.select(dataset="load", per_label=2, seed=rng.randrange(1 << 30)).export(
            root, jobs=1
        )
        result.exports.append((done.export_id, str(done.root), done.count))

    def decision() -> None:
        image = f"train:{rng.randrange(IMAGES)}"
        done = catalog.relabel(image, rng.randrange(10), dataset="load", by=result.author)
        result.decisions += done.recorded

    return {
        "query": query, "count": count, "arrays": arrays, "export": export, "decision": decision,
    }  # fmt: skip


def _client(url: str, number: int, out: Path, start: Any, deadline: float, queue: Any) -> None:
    result = ClientResult(author=f"client{number}")
    rng = random.Random(number)
    try:
        with Catalog.open(url) as catalog:
            operations = _operations(catalog, out / f"client{number}", rng, result)
            names, weights = list(MIX), list(MIX.values())
            start.wait(60)
            while time.monotonic() < deadline:
                name = rng.choices(names, weights)[0]
                began = time.perf_counter()
                try:
                    operations[name]()
                except Exception as exc:  # noqa: BLE001 (counted and reported, not hidden)
                    result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                    continue
                result.latencies.setdefault(name, []).append(time.perf_counter() - began)
    except Exception:  # noqa: BLE001
        result.errors.append(f"client {number}: {traceback.format_exc(limit=3)}")
    queue.put(result)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def _check(url: str, results: list[ClientResult]) -> list[str]:
    """Every export a client made is on record with exactly its files, and no other;
    every decision a client saw recorded is in the log, and no other."""
    from sqlalchemy import func, select

    from catalog.db.engine import session_scope
    from catalog.db.models.decisions import Decision
    from catalog.db.models.exports import Export, ExportedFile

    lost: list[str] = []
    made = {export_id: (root, count) for r in results for export_id, root, count in r.exports}
    with Catalog.open(url) as catalog, session_scope(catalog.engine) as session:
        logged = dict(
            session.execute(select(Decision.author, func.count()).group_by(Decision.author)).all()
        )
        made_decisions = {r.author: r.decisions for r in results if r.decisions}
        if logged != made_decisions:
            lost.append(f"decisions in the log {logged} != decisions clients made {made_decisions}")
        on_record = {row.id: row for row in session.scalars(select(Export))}
        for export_id in sorted(set(on_record) - set(made)):
            lost.append(f"export #{export_id} is on record but no client made it")
        for export_id, (root, count) in sorted(made.items()):
            if export_id not in on_record:
                lost.append(f"export #{export_id} into {root} is not on record")
                continue
            paths = set(
                session.scalars(
                    select(ExportedFile.path).where(ExportedFile.path.startswith(f"{root}/"))
                )
            )
            files = {str(p) for p in Path(root).rglob("*.png")}
            if paths != files or len(files) != count:
                lost.append(
                    f"export #{export_id} into {root}: {len(files)} files on disk, "
                    f"{len(paths)} on record, {count} reported"
                )
    return lost


@contextmanager
def catalog_location(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh catalog on ``backend``: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield str(workdir / "load.db")
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"load_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_load(backend: str, clients: int, seconds: float, workdir: Path) -> LoadReport:
    """Run the load on a fresh catalog of ``backend``; return what it measured."""
    with catalog_location(backend, workdir) as url:
        with Catalog.open(url) as catalog:
            catalog.ingest(write_source(workdir / "source"), dataset="load")
        context = multiprocessing.get_context("fork")
        start, queue = context.Event(), context.Queue()
        deadline = time.monotonic() + seconds + 5  # the clients' imports are done: fork
        procs = [
            context.Process(
                target=_client, args=(url, number, workdir / backend, start, deadline, queue)
            )
            for number in range(clients)
        ]
        for proc in procs:
            proc.start()
        time.sleep(max(0.0, deadline - seconds - time.monotonic()))
        began = time.monotonic()
        start.set()
        results = [queue.get(timeout=seconds + 300) for _ in procs]
        elapsed = time.monotonic() - began
        for proc in procs:
            proc.join(timeout=60)
        latencies: dict[str, list[float]] = {}
        for result in results:
            for name, values in result.latencies.items():
                latencies.setdefault(name, []).extend(values)
        return LoadReport(
            backend=backend,
            clients=clients,
            seconds=elapsed,
            ops=sum(len(v) for v in latencies.values()),
            errors=[e for r in results for e in r.errors],
            per_op={name: _percentiles(values) for name, values in sorted(latencies.items())},
            exports=sum(len(r.exports) for r in results),
            lost=_check(url, results),
        )


def render(report: LoadReport) -> str:
    lines = [
        (
            f"{report.backend}: {report.clients} clients x {report.seconds:.1f} s: "
            f"{report.ops:,} ops, {report.ops_per_second:,.1f} ops/s, "
            f"{len(report.errors)} errors, {report.exports} exports, "
            f"{'nothing lost' if not report.lost else f'{len(report.lost)} LOST'}"
        ),
        f"  {'op':8} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name, figures in report.per_op.items():
        lines.append(
            f"  {name:8} {figures['count']:>7,.0f} {figures['p50_ms']:>8.1f} "
            f"{figures['p95_ms']:>8.1f} {figures['p99_ms']:>8.1f} {figures['max_ms']:>8.1f}"
        )
    lines.extend(f"  error: {error}" for error in report.errors[:20])
    lines.extend(f"  lost: {item}" for item in report.lost[:20])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--backend", action="append", choices=["sqlite", "postgresql"], default=None
    )
    parser.add_argument("--json", action="store_true", help="Print the reports as JSON.")
    args = parser.parse_args(argv)
    reports = []
    for backend in args.backend or ["sqlite", "postgresql"]:
        with tempfile.TemporaryDirectory(prefix="mnist-catalog-load-") as workdir:
            reports.append(run_load(backend, args.clients, args.seconds, Path(workdir)))
        if not args.json:
            print(render(reports[-1]), flush=True)
    if args.json:
        print(json.dumps([r.__dict__ | {"ops_per_second": r.ops_per_second} for r in reports]))
    return 1 if any(r.errors or r.lost for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
