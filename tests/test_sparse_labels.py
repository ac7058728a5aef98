"""Label sets hold the labels present (issue 24, phase 2): a CSV labelled 0, 1,000,000 and
2,147,483,647 (ids in the label column) ingests at once into a set of three, and every
command that lists or names labels works on it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, traced_peak
from family_builders import write_csv
from sqlalchemy import select
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.db.engine import session_scope
from catalog.db.models.family import LabelName
from catalog.facts.label_sets import LabelSet

MiB = 1 << 20
LABELS = (0, 1_000_000, 2**31 - 1)


def sparse_csv(folder: Path, labels: tuple[int, ...] = LABELS, each: int = 3) -> Path:
    """``each`` digits of every label, headerless, as a file named like MNIST's CSV."""
    x, _ = random_digits(len(labels) * each, seed=7)
    y = np.array([label for _ in range(each) for label in labels], dtype=np.int64)
    return write_csv(folder / "mnist_train.csv", x, y, header="none")


def test_a_sparse_label_set_ingests_small_and_fast(tmp_path: Path, catalog: Catalog) -> None:
    """Before: a set of every number up to the largest (62 s and 2.1 GB for 1,000,000;
    a MemoryError for 2**31-1). Now three label rows, in a few MiB."""
    source = sparse_csv(tmp_path)
    start = time.perf_counter()
    with traced_peak() as peak:
        result = catalog.ingest(source, dataset="ids")
    seconds = time.perf_counter() - start
    assert result.total == 9
    assert result.label_set == "numbers"
    with session_scope(catalog.engine) as session:
        rows = session.execute(
            select(LabelName.number, LabelName.name).order_by(LabelName.number)
        ).all()
    assert [tuple(row) for row in rows] == [(n, str(n)) for n in LABELS]
    # A few MiB (the driver's and SQLAlchemy's first compilations included, which vary
    # with what the worker ran before: 5-10 MiB seen), against 2.1 GB before.
    assert peak[0] < 32 * MiB, f"{peak[0] / MiB:.1f} MiB"
    print(f"\nsparse labels: {seconds:.3f} s, {peak[0] / MiB:.1f} MiB traced")


def _cli(db: str, *args: str) -> str:
    result = CliRunner().invoke(app, ["--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_that_lists_labels_works_on_sparse_labels(
    tmp_path: Path, db_url: str
) -> None:
    source = sparse_csv(tmp_path)
    _cli(db_url, "ingest", str(source), "-d", "ids")
    listed = _cli(db_url, "datasets")
    assert "  labels: 3 classes: 0, 1000000, 2147483647\n" in listed
    assert re.search(r"  train +9   per label: 3 3 3\n", listed)
    [summary] = json.loads(_cli(db_url, "datasets", "--json"))
    assert summary["labels"] == list(LABELS)
    assert summary["label_counts"] == {"train": [3, 3, 3]}
    counted = _cli(db_url, "count", "--by", "label").split()
    assert counted == ["label", "count", "0", "3", "1000000", "3", "2147483647", "3", "total", "9"]
    assert _cli(db_url, "count", "-l", "2147483647") == "3\n"
    by_json = json.loads(_cli(db_url, "count", "--by", "label", "--json"))
    assert [row["label"] for row in by_json] == list(LABELS)
    rows = _cli(db_url, "query", "-l", "1000000", "--format", "csv").splitlines()
    assert [row.split(",")[3] for row in rows[1:]] == ["1000000"] * 3
    assert "label 2147483647" in _cli(db_url, "show", "train:2")
    # A decision to a sparse label, counted and listed
    _cli(db_url, "relabel", "train:0", "2147483647", "--by", "test")
    assert _cli(db_url, "count", "-l", "2147483647") == "4\n"
    assert "2147483647" in _cli(db_url, "history", "train:0")
    # Exports: folders by number and by name; a parquet file keeps plain integer labels
    for names in ("numbers", "names"):
        out = tmp_path / f"by-{names}"
        _cli(db_url, "export", str(out), "--folder-names", names)
        files = sorted(p.name for p in (out / "train").iterdir())
        assert "000002_2147483647.png" in files
        assert "000004_1000000.png" in files
    _cli(db_url, "sheet", "-o", str(tmp_path / "sheet.png"), "-l", "2147483647")
    audit = json.loads(_cli(db_url, "audit", "--check", "balance", "--json", "--no-store"))
    assert audit["summary"]["balance"]["ids"]["labels"] == list(LABELS)
    assert audit["summary"]["balance"]["ids"]["counts"] == {"train": [2, 3, 4]}
    idx = CliRunner().invoke(app, ["--db", db_url, "export", str(tmp_path / "i"), "--as", "idx"])
    assert idx.exit_code == 1
    assert "does not fit an IDX label file: expected 0-255" in idx.stderr


def test_parquet_export_of_sparse_labels_keeps_integers(tmp_path: Path, db_url: str) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    _cli(db_url, "ingest", str(sparse_csv(tmp_path)), "-d", "ids")
    _cli(db_url, "export", str(tmp_path / "pq"), "--as", "parquet")
    [written] = (tmp_path / "pq").rglob("*.parquet")
    table = pq.read_table(written)
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["label"] == {"dtype": "int64", "_type": "Value"}
    assert sorted(set(table.column("label").to_pylist())) == list(LABELS)


def test_the_web_overview_shows_sparse_labels(tmp_path: Path, catalog: Catalog) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from catalog.web.app import create_app

    catalog.ingest(sparse_csv(tmp_path), dataset="ids")
    with TestClient(create_app(catalog), base_url="http://127.0.0.1") as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "label=2147483647" in page.text
        [data] = client.get("/api/overview").json()["datasets"]
        assert data["labels"] == [str(n) for n in LABELS]
        assert data["counts"] == {"train": {"0": 3, "1000000": 3, "2147483647": 3}}
        grid = client.get("/grid?dataset=ids&label=2147483647")
        assert grid.status_code == 200


def test_datasets_caps_its_per_label_line(tmp_path: Path) -> None:
    db = str(tmp_path / "catalog.db")
    many = tuple(range(0, 40_000, 1000))  # 40 labels, sparse
    _cli(db, "ingest", str(sparse_csv(tmp_path, many, each=1)), "-d", "many")
    listed = _cli(db, "datasets")
    assert "  labels: 40 classes: 0, 1000, 2000, " in listed
    assert ", 11000, ... (40)\n" in listed
    assert re.search(r"  train +40   per label: (1 ){12}\.\.\. \(40\)\n", listed)


def test_label_set_lookups_are_by_dictionary() -> None:
    labels = LabelSet((0, 1_000_000, 2**31 - 1), ("zero", "A/a", "top"))
    assert 1_000_000 in labels
    assert 999_999 not in labels
    assert labels.name(2**31 - 1) == "top"
    assert labels.name(5) == "5"
    assert labels.parse("top") == 2**31 - 1
    assert labels.parse("a") == 1_000_000
    assert labels.parse("2147483647") == 2**31 - 1
    assert labels.by_position() is None
