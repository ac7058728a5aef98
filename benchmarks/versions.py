"""Versions on the real MNIST (70,000 images): freeze, diff, and export with --version.

    python benchmarks/versions.py [--mnist DIR] [--pg URL] [--repeat 3] [--jobs 2]

Measured in one run on one catalog (SQLite in a temporary folder, or with ``--pg`` in
a new schema of that PostgreSQL database, dropped at the end):

- ``freeze``: ``Catalog.freeze("v1")`` of all 70,000 images (the read of their places,
  digests and labels, the content id, the bulk insert, the commit);
- ``diff``: after 100 relabels and 100 exclusions, ``freeze("v2")``, then
  ``Catalog.diff("v1", "v2")`` of the two 70,000-image versions (and ``diff v1 current``);
- ``export``: the same 70,000 images exported as ``npz`` and as ``parquet``, by the plain
  selection (before any decision) and by ``--version v1``; runs alternate, each into a
  new folder, and the median of ``--repeat`` runs is reported. The two exports' data
  files are checked to hold the same pixels and labels.

The baseline of the export is the same export without ``--version``: the version
adds a join on ``version_images`` and a check that no pixel changed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DEFAULT_MNIST = Path("/work/shared/data/mnist")

from catalog import Catalog


def timed(work):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.pg) as url:
        root = Path(tmp)
        with Catalog.open(url or root / "catalog.db") as catalog:
            seconds, _ = timed(lambda: catalog.ingest(args.mnist, dataset="mnist"))
            print(f"ingest: {seconds:.2f} s ({catalog.engine.dialect.name})")
            seconds, v1 = timed(lambda: catalog.freeze("v1", note="as published"))
            print(
                f"freeze v1: {v1.count:,} images in {seconds:.3f} s, content id {v1.content_id[:16]}"
            )

            times: dict[str, list[float]] = {}
            for output in ("npz", "parquet"):
                for run in range(args.repeat):
                    for how, selected in (
                        ("plain", catalog.select()),
                        ("version", catalog.version("v1")),
                    ):
                        out = root / f"{output}-{how}-{run}"
                        seconds, _ = timed(
                            lambda s=selected, o=out, f=output: s.export(
                                o, output=f, jobs=args.jobs
                            )
                        )
                        times.setdefault(f"{output} {how}", []).append(seconds)
                plain = np.load(root / "npz-plain-0" / "mnist.npz") if output == "npz" else None
                if plain is not None:
                    with np.load(root / "npz-version-0" / "mnist.npz") as ver:
                        same = all(
                            np.array_equal(plain[k], ver[k])
                            for k in ("x_train", "y_train", "x_test", "y_test")
                        )
                    plain.close()
                    print(f"npz plain and npz --version hold the same arrays: {same}")
            for key, values in times.items():
                runs = ", ".join(f"{v:.2f}" for v in values)
                print(f"export {key}: median {statistics.median(values):.2f} s (runs {runs})")

            rng = np.random.default_rng(0)
            picked = rng.choice(60_000, 200, replace=False)
            for index in picked[:100].tolist():
                catalog.relabel(f"train:{index}", (index + 1) % 10)
            catalog.exclude([f"train:{i}" for i in picked[100:].tolist()], reason="benchmark")
            seconds, v2 = timed(lambda: catalog.freeze("v2"))
            print(f"freeze v2: {v2.count:,} images in {seconds:.3f} s")
            seconds, diff = timed(lambda: catalog.diff("v1", "v2"))
            print(
                f"diff v1 v2: {seconds:.3f} s: {len(diff.added)} added, {len(diff.removed)} removed, "
                f"{len(diff.relabelled)} relabelled"
            )
            seconds, diff = timed(lambda: catalog.diff("v1", "current"))
            print(
                f"diff v1 current: {seconds:.3f} s ({len(diff.removed)} removed, {len(diff.relabelled)} relabelled)"
            )
            seconds, _ = timed(
                lambda: catalog.version("v1").export(root / "after", output="npz", jobs=args.jobs)
            )
            with (
                np.load(root / "npz-version-0" / "mnist.npz") as a,
                np.load(root / "after" / "mnist.npz") as b,
            ):
                same = all(np.array_equal(a[k], b[k]) for k in a.files)
            print(
                f"export --version v1 after the decisions: {seconds:.2f} s, same arrays as before: {same}"
            )
            same_bytes = (root / "npz-version-0" / "mnist.npz").read_bytes() == (
                root / "after" / "mnist.npz"
            ).read_bytes()
            print(f"  same npz bytes: {same_bytes}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


@contextmanager
def pg_schema(url: str | None) -> Iterator[str | None]:
    """A URL of a new schema of the PostgreSQL database at ``url``, dropped afterwards."""
    if url is None:
        yield None
        return
    from sqlalchemy import create_engine, make_url, text

    schema = f"bench_versions_{os.getpid()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
