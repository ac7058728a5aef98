"""``mnist-catalog db backup OUT``: a consistent copy while others read and write.

A copy made while another process is in the middle of an ingest holds the catalog as it
was before that ingest (whole datasets only), passes ``db check`` and opens with ``--db``;
a copy made after it holds the new dataset whole. On SQLite the copy is SQLite's online
backup; on PostgreSQL a ``pg_dump`` file, restored here into a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from builders import random_digits, write_idx_pair
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.db import backup as backup_module
from catalog.errors import BackupError

TINY = Path(__file__).parent / "data" / "tiny"
ROOT = Path(__file__).resolve().parents[1]

#: Ingests SOURCE into the catalog URL as ``big``, one transaction that stays open for a
#: while: after each batch it says so and waits a little.
SLOW_INGEST = """
import sys, time
from pathlib import Path
from catalog import Catalog

def progress(n):
    print("batch", flush=True)
    time.sleep(0.5)

with Catalog.open(sys.argv[1]) as catalog:
    catalog.ingest(Path(sys.argv[2]), dataset="big", progress=progress)
print("done", flush=True)
"""


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@contextmanager
def opened_copy(copy: Path, db_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The catalog location of a backup: the SQLite file itself, or a PostgreSQL database
    made for it and restored from the dump (with the catalog's own schema)."""
    if "://" not in db_url:
        yield str(copy)
        return
    if shutil.which("pg_restore") is None:
        pytest.skip("pg_restore is not on PATH")
    admin = request.getfixturevalue("pg_admin")
    name = f"backup_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(db_url).set(database=name)
    try:
        plain = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={plain}", str(copy)], check=True)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def _datasets(location: str) -> dict[str, dict[str, int]]:
    with Catalog.open(location) as catalog:
        return {summary.name: summary.splits for summary in catalog.datasets()}


@pytest.mark.slow
def test_backup_during_a_concurrent_ingest_holds_whole_datasets(
    tmp_path: Path, db_url: str, request: pytest.FixtureRequest
) -> None:
    with Catalog.open(db_url) as catalog:
        catalog.ingest(TINY, dataset="tiny")
        catalog.relabel("train:0", 3, by="test")
    x, y = random_digits(12_000, seed=4)
    write_idx_pair(tmp_path / "big", "train", x, y)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    ingest = subprocess.Popen(
        [sys.executable, "-c", SLOW_INGEST, db_url, str(tmp_path / "big")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert ingest.stdout is not None
        assert ingest.stdout.readline() == "batch\n", ingest.communicate()
        during = tmp_path / "during.db"
        _cli("--db", db_url, "db", "backup", str(during))
        assert ingest.poll() is None  # the ingest was still open when the copy was done
        out, err = ingest.communicate(timeout=300)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 0, err
    assert out.endswith("done\n")
    after = tmp_path / "after.db"
    _cli("--db", db_url, "db", "backup", str(after))
    tiny = {"test": 2, "train": 3}
    with opened_copy(during, db_url, request) as location:
        assert _datasets(location) == {"tiny": tiny}
        assert "nothing is broken" in _cli("--db", location, "db", "check")
        assert "(was 1)" in _cli("--db", location, "query", "-s", "train")  # the decision
    with opened_copy(after, db_url, request) as location:
        assert _datasets(location) == {"big": {"train": 12_000}, "tiny": tiny}
        assert "nothing is broken" in _cli("--db", location, "db", "check")


def test_a_commit_during_the_copy_starts_it_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection commits between the steps: SQLite starts the copy over; after
    MOST_RESTARTS, the rest goes in one step. The copy is of one moment, and checks clean."""
    db = tmp_path / "catalog.db"
    x, y = random_digits(3000, seed=5)
    write_idx_pair(tmp_path / "digits", "train", x, y)
    monkeypatch.setattr(backup_module, "STEP_PAGES", 16)
    with Catalog.open(db) as catalog, Catalog.open(db) as writer:
        catalog.ingest(tmp_path / "digits", dataset="digits")
        made: list[int] = []

        def commit_between_steps(done: int, total: int) -> None:
            if done < total:  # another client decides while the copy is under way
                writer.tag("seen", f"train:{len(made)}", by="other")
                made.append(done)

        copy = catalog.backup(tmp_path / "copy.db", progress=commit_between_steps)
    assert copy.restarts == backup_module.MOST_RESTARTS
    with Catalog.open(copy.path) as copied:
        assert copied.check().ok
        tagged = copied.select(tag="seen").count()
    assert 1 <= tagged <= len(made)


def test_backup_refuses_an_existing_file_and_a_missing_folder(tmp_path: Path, db_url: str) -> None:
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"")
    runner = CliRunner()
    for out, said in (
        (taken, f"Error: Cannot back up to {taken}: taken.db exists; remove it or choose a new name\n"),
        (tmp_path / "no" / "copy.db", (f"Error: Cannot back up to {tmp_path / 'no' / 'copy.db'}: "
                                       f"folder {tmp_path / 'no'} does not exist\n")),
    ):  # fmt: skip
        result = runner.invoke(app, ["--db", db_url, "db", "backup", str(out)])
        assert result.exit_code == 1
        assert result.stderr == said
    assert taken.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_failed_backup_leaves_no_file(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> int:
        msg = "Cannot back up: disk full"
        raise BackupError(msg)

    monkeypatch.setattr(backup_module, "_copy_sqlite", fail)
    monkeypatch.setattr(backup_module, "_pg_dump", fail)
    with Catalog.open(db_url) as catalog, pytest.raises(BackupError):
        catalog.backup(tmp_path / "copy.db")
    assert [p.name for p in tmp_path.iterdir() if "copy" in p.name] == []


def test_postgresql_backup_without_pg_dump_says_how(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "://" not in db_url:
        pytest.skip("PostgreSQL only")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    result = CliRunner().invoke(app, ["--db", db_url, "db", "backup", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "pg_dump is not on PATH; install the PostgreSQL client tools, or run pg_dump " in (
        result.stderr
    )
    assert "--format=custom --schema=t_" in result.stderr
    assert not (tmp_path / "x").exists()
