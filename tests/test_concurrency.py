"""Concurrency on one SQLite catalog file: processes that export, ingest and query at once.

Each process runs the real command line (``tests/scripts/run_cli.py``): all are
started, wait until imported, and are then let go together, so that their work
overlaps. SQLite lets one writer in at a time; the others must wait their turn
(the busy timeout), never fail with "database is locked", and readers must see
a dataset whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from builders import random_digits, write_idx_pair
from clients import release, spawn
from sqlalchemy import select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import ExportedFile
from catalog.db.schema import current_revision, head_revision
from catalog.export.atomic import TEMP_MARK
from catalog.export.encoders import encode

TINY = Path(__file__).parent / "data" / "tiny"
TRAIN, TEST = 5000, 1000


def finish(proc: subprocess.Popen[str]) -> str:
    """Wait for ``proc``; it must succeed with nothing on stderr. Returns its stdout."""
    out, err = proc.communicate(timeout=120)
    assert "database is locked" not in err
    assert (proc.returncode, err) == (0, "")
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated IDX source of 6,000 images (train 5,000, test 1,000)."""
    folder = tmp_path_factory.mktemp("source")
    pixels, labels = random_digits(TRAIN + TEST, seed=7)
    write_idx_pair(folder, "train", pixels[:TRAIN], labels[:TRAIN])
    write_idx_pair(folder, "t10k", pixels[TRAIN:], labels[TRAIN:])
    return folder


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    """A migrated SQLite catalog holding the tiny dataset."""
    path = tmp_path / "catalog.db"
    with Catalog.open(path) as catalog:
        catalog.ingest(TINY, dataset="tiny")
    return path


def expected_files(catalog: Catalog, labels: list[int]) -> dict[str, bytes]:
    """Classic-layout relative path -> PNG bytes, for dataset ``gen``'s ``labels``."""
    selection = catalog.select(dataset="gen", labels=labels)
    pixels, _ = selection.arrays()
    return {
        f"{row.split}/{row.index:06d}_{row.label}.png": encode(image, "png")
        for row, image in zip(selection.rows(), pixels, strict=True)
    }


def recorded(catalog: Catalog, out: Path) -> dict[str, str]:
    with session_scope(catalog.engine) as session:
        rows = session.execute(
            select(ExportedFile.path, ExportedFile.sha256).where(
                ExportedFile.path.startswith(f"{out}/")
            )
        )
        return dict(rows.all())


@pytest.mark.slow
def test_two_processes_export_different_subsets_at_once(
    catalog_file: Path, source: Path, tmp_path: Path
) -> None:
    """Three rounds of two exports started together (labels 0-4 with --jobs 1, labels
    5-9 with --jobs 2): both succeed, with nothing on stderr, and each folder holds
    exactly its subset, byte for byte, every file recorded with its digest."""
    subsets = {"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]}
    with Catalog.open(catalog_file) as catalog:
        catalog.ingest(source, dataset="gen")
        expected = {name: expected_files(catalog, labels) for name, labels in subsets.items()}
    assert sum(len(files) for files in expected.values()) == TRAIN + TEST
    for round_ in range(3):
        procs = {
            name: spawn(
                catalog_file, "export", str(tmp_path / f"{name}{round_}"), "--dataset", "gen",
                "--label", ",".join(map(str, labels)), "--jobs", "1" if name == "low" else "2",
            )
            for name, labels in subsets.items()
        }  # fmt: skip
        release(*procs.values())
        for proc in procs.values():
            finish(proc)
    with Catalog.open(catalog_file) as catalog:
        for round_ in range(3):
            for name, files in expected.items():
                out = tmp_path / f"{name}{round_}"
                on_disk = {
                    p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")
                }
                assert on_disk == files
                assert not [p for p in out.rglob("*") if TEMP_MARK in p.name]
                assert recorded(catalog, out) == {
                    f"{out}/{relative}": hashlib.sha256(data).hexdigest()
                    for relative, data in files.items()
                }
        records = catalog.exports()
        assert len(records) == 6
        assert sorted(r["count"] for r in records) == sorted(
            len(files) for files in expected.values() for _ in range(3)
        )
        assert all(r["count"] == r["written"] == r["files"] for r in records)


def test_queries_while_another_process_ingests(
    catalog_file: Path, source: Path, tmp_path: Path
) -> None:
    """One process runs ``datasets --json`` in a loop while another ingests 6,000 images.

    Every query succeeds and sees the tiny dataset whole and the new one either
    absent or whole (never a part of it); the ingest succeeds; no "database is locked".
    """
    stop = tmp_path / "stop"
    queries = spawn(catalog_file, "datasets", "--json", until=stop)
    ingest = spawn(catalog_file, "ingest", str(source), "--dataset", "gen")
    release(queries)
    assert queries.stdout is not None
    lines = [queries.stdout.readline(), queries.stdout.readline()]
    while lines[-1] != "---\n":  # the first query is done before the ingest starts
        lines.append(queries.stdout.readline())
        assert lines[-1], queries.communicate()
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(finish(queries)))
    reader.start()
    release(ingest)
    started = time.monotonic()
    finish(ingest)
    ingest_took = time.monotonic() - started
    stop.touch()
    reader.join(timeout=120)
    runs = [json.loads(text) for text in ("".join(lines) + output[0]).split("---\n")[1:]]
    assert len(runs) >= 3, (runs, ingest_took)
    seen = []
    for run in runs:
        by_name: dict[str, dict[str, Any]] = {summary["name"]: summary for summary in run}
        assert by_name["tiny"]["splits"] == {"test": 2, "train": 3}
        gen = by_name.get("gen")
        assert gen is None or gen["splits"] == {"test": TEST, "train": TRAIN}
        assert gen is None or sum(map(sum, gen["label_counts"].values())) == TRAIN + TEST
        seen.append(gen is not None)
    assert seen[0] is False
    assert seen[-1] is True
    assert seen == sorted(seen)  # once visible, it stays


def test_two_processes_create_a_new_catalog_at_once(tmp_path: Path) -> None:
    """Two commands started together on a catalog file that does not exist yet both
    create (migrate) it or wait for the other; both succeed, and it is at head."""
    catalog_file = tmp_path / "new.db"
    procs = [spawn(catalog_file, "ingest", str(TINY), "--dataset", f"tiny{i}") for i in (1, 2)]
    release(*procs)
    for proc in procs:
        finish(proc)
    with Catalog.open(catalog_file) as catalog:
        assert sorted(d.name for d in catalog.datasets()) == ["tiny1", "tiny2"]
        assert current_revision(catalog.engine) == head_revision(catalog.engine)
