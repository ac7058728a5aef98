"""``mnist-catalog db check``, as ``git fsck`` is to git: rows broken behind the catalog's
back (raw SQL) are each named, with exit 1; a clean catalog passes and says how much it
read. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from builders import traced_peak
from sqlalchemy import text
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app

TINY = Path(__file__).parent / "data" / "tiny"
MiB = 1 << 20


@pytest.fixture
def curated(catalog: Catalog, tmp_path: Path) -> Catalog:
    """The tiny dataset with a relabel, an exclusion, a tag and a folder export."""
    catalog.ingest(TINY, dataset="tiny")
    catalog.relabel("train:0", 3, by="test")
    catalog.exclude("train:1", reason="blurred", by="test")
    catalog.tag("odd", "test:1", by="test")
    catalog.select(dataset="tiny").export(tmp_path / "out", jobs=1)
    return catalog


def _url(catalog: Catalog) -> str:
    url = catalog.engine.url
    return (
        url.database or ""
        if url.get_backend_name() == "sqlite"
        else url.render_as_string(hide_password=False)
    )


def _check(catalog: Catalog, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--db", _url(catalog), "db", "check", *args])
    assert result.stderr == ""
    return result.exit_code, result.stdout


def _sql(catalog: Catalog, statement: str, **values: object) -> None:
    with catalog.engine.begin() as connection:
        connection.execute(text(statement), values)


def _image_id(catalog: Catalog, split: str, index: int) -> int:
    with catalog.engine.connect() as connection:
        found = connection.execute(
            text("SELECT id FROM images WHERE split = :split AND idx = :index"),
            {"split": split, "index": index},
        ).scalar()
    assert found is not None
    return int(found)


def test_a_clean_catalog_passes_and_says_what_it_read(curated: Catalog) -> None:
    code, out = _check(curated)
    assert code == 0
    database = "the database file, " if curated.engine.dialect.name == "sqlite" else ""
    assert re.fullmatch(
        rf"Checked {database}5 images, 3 decisions, 5 label counts in \d+\.\d s: "
        r"nothing is broken\.\n",
        out,
    ), out
    code, out = _check(curated, "--files")
    assert code == 0
    assert ", 4 exported files in " in out  # train:1 is excluded
    report = json.loads(_check(curated, "--json")[1])
    assert report["ok"] is True
    assert report["broken"] == []
    assert report["checked"]["pixels"] == 5


def test_a_flipped_byte_in_one_stored_image_is_named(curated: Catalog) -> None:
    image = _image_id(curated, "test", 1)
    with curated.engine.connect() as connection:
        pixels = bytearray(
            connection.execute(text("SELECT pixels FROM images WHERE id = :id"), {"id": image})
            .scalar_one()
        )  # fmt: skip
    pixels[300] ^= 0x01
    _sql(
        curated, "UPDATE images SET pixels = :pixels WHERE id = :id", pixels=bytes(pixels), id=image
    )
    code, out = _check(curated)
    assert code == 1
    assert out.splitlines()[0] == "tiny test:1 pixels do not match their sha256"
    assert out.splitlines()[-1].endswith(": 1 broken row.")
    report = json.loads(_check(curated, "--json")[1])
    assert report["ok"] is False
    assert report["broken"] == [
        {"check": "pixels", "row": "tiny test:1", "problem": "pixels do not match their sha256"}
    ]


def test_a_truncated_image_is_named(curated: Catalog) -> None:
    image = _image_id(curated, "train", 2)
    _sql(curated, "UPDATE images SET pixels = :pixels WHERE id = :id", pixels=b"\0" * 700, id=image)
    code, out = _check(curated)
    assert code == 1
    assert "tiny train:2 pixels are 700 bytes, expected 28 x 28 = 784\n" in out


def test_corrupted_state_rows_and_a_wrong_label_count_are_named(curated: Catalog) -> None:
    relabelled, excluded = _image_id(curated, "train", 0), _image_id(curated, "train", 1)
    _sql(curated, "UPDATE image_state SET label = 5 WHERE image_id = :id", id=relabelled)
    _sql(curated, "UPDATE image_state SET excluded = :no, source_label = 9 WHERE image_id = :id",
         no=False, id=excluded)  # fmt: skip
    _sql(curated, "DELETE FROM image_tags")
    _sql(curated, "UPDATE label_counts SET n = n + 2 WHERE split = 'test' AND label = 7")
    code, out = _check(curated)
    assert code == 1
    lines = out.splitlines()
    assert lines[:-1] == [
        "tiny test:1 image_tags say no tags where the decision log gives odd",
        "tiny train:0 image_state says label 5 where the decision log gives label 3",
        "tiny train:1 image_state says included where the decision log says excluded",
        "tiny train:1 image_state says the source gave label 9 where the image has label 7",
        "tiny test label 7 is counted 3 in label_counts; the images hold 1",
    ], out
    assert lines[-1].endswith(": 5 broken rows.")


def test_a_state_row_without_decisions_and_a_missing_one_are_named(curated: Catalog) -> None:
    tagged = _image_id(curated, "test", 1)
    _sql(curated, "DELETE FROM image_state WHERE image_id = :id", id=tagged)
    other = _image_id(curated, "test", 0)
    _sql(curated, "INSERT INTO image_state (image_id, label, excluded, decision_id, dataset_id, "
         "split, idx, source_label) SELECT id, NULL, :no, 99, dataset_id, split, idx, label "
         "FROM images WHERE id = :id", no=False, id=other)  # fmt: skip
    code, out = _check(curated)
    assert code == 1
    assert "tiny test:0 has an image_state row but no decision in the log\n" in out
    assert "tiny test:1 has decisions (the latest #3) but no image_state row\n" in out


def test_files_names_changed_and_missing_exported_files(curated: Catalog, tmp_path: Path) -> None:
    files = sorted((tmp_path / "out").rglob("*.png"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes() + b"\0")
    assert _check(curated)[0] == 0  # files only with --files
    code, out = _check(curated, "--files")
    assert code == 1
    assert f"exported file {files[0]} (of tiny " in out
    assert ": no such file\n" in out
    assert f"exported file {files[1]} (of tiny " in out
    assert ": digest differs from the one recorded\n" in out


@pytest.mark.mnist
def test_db_check_reads_mnist_in_bounded_memory(mnist_catalog: Catalog) -> None:
    """The 70,000 images are read a page at a time: the traced peak stays a few pages
    (16 MiB of pixels each), whatever the catalog's size. Timed without tracing."""
    start = time.perf_counter()
    report = mnist_catalog.check()
    seconds = time.perf_counter() - start
    assert report.ok
    assert report.checked["pixels"] == 70_000
    with traced_peak() as peak:
        assert mnist_catalog.check().ok
    assert peak[0] < 48 * MiB, f"{peak[0] / MiB:.1f} MiB"
    print(
        f"\ndb check of MNIST: {seconds:.2f} s ({report.seconds}), {peak[0] / MiB:.1f} MiB traced"
    )
