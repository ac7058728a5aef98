"""Writers racing each other on one catalog, and the driver errors they can meet.

Each write either lands or fails with one line (never a traceback), and the
catalog stays consistent; an ingest that finds another ingest of its dataset
under way waits for it (saying so) instead of failing. Processes are started
together (tests/clients.py), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from clients import Outcome, one_line_error, run_together
from sqlalchemy import func, select, text

from catalog import Catalog
from catalog.db import engine
from catalog.db.engine import session_scope
from catalog.db.locks import lock_dataset
from catalog.db.models.exports import ExportedFile
from catalog.db.models.images import Source
from catalog.errors import CatalogBusyError, CatalogConnectionError

TINY = Path(__file__).parent / "data" / "tiny"
TRAIN, TEST = 5000, 1000
WAITING = "waiting for another ingest of gen...\n"


def make_source(folder: Path, seed: int) -> Path:
    pixels, labels = random_digits(TRAIN + TEST, seed=seed)
    write_idx_pair(folder, "train", pixels[:TRAIN], labels[:TRAIN])
    write_idx_pair(folder, "t10k", pixels[TRAIN:], labels[TRAIN:])
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two generated IDX sources of 6,000 images with different content."""
    return (
        make_source(tmp_path_factory.mktemp("a"), seed=1),
        make_source(tmp_path_factory.mktemp("b"), seed=2),
    )


def test_two_ingests_of_one_dataset_at_once(db_url: str, sources: tuple[Path, Path]) -> None:
    """Both succeed: one ingests, the other (having waited) finds the same content."""
    Catalog.open(db_url).close()  # migrated, so the two race on the ingest itself
    outcomes = run_together(db_url, [["ingest", str(sources[0]), "--dataset", "gen"]] * 2)
    for outcome in outcomes:
        assert (outcome.code, outcome.err) in {(0, ""), (0, WAITING)}, outcome
    firsts = sorted(outcome.out.splitlines()[0] for outcome in outcomes)
    assert firsts == [
        "Already in the catalog: gen (test 1,000, train 5,000); nothing ingested.",
        "Ingested 6,000 images into gen: test 1,000, train 5,000",
    ]
    with Catalog.open(db_url) as catalog:
        assert catalog.select(dataset="gen").count() == TRAIN + TEST
        with session_scope(catalog.engine) as session:
            assert session.scalar(select(func.count()).select_from(Source)) == 4


def test_an_ingest_racing_a_replace(db_url: str, sources: tuple[Path, Path]) -> None:
    """``ingest A`` and ``ingest B --replace`` at once: whichever goes first, the
    dataset ends holding B whole; A either landed first or failed in one line."""
    Catalog.open(db_url).close()
    plain, replace = run_together(
        db_url,
        [
            ["ingest", str(sources[0]), "--dataset", "gen"],
            ["ingest", str(sources[1]), "--dataset", "gen", "--replace"],
        ],
    )
    assert (replace.code, replace.err) in {(0, ""), (0, WAITING)}, replace
    if plain.code == 0:
        assert plain.out.startswith("Ingested 6,000 images into gen")
        assert "(replaced test, train)" in replace.out
    else:  # it may have waited for the replace first, and said so
        waited = plain.err.startswith(WAITING)
        plain = Outcome(plain.code, plain.out, plain.err.removeprefix(WAITING))
        assert one_line_error(plain, "already has images in split(s) test, train"), (waited, plain)
    with Catalog.open(db_url) as catalog:
        pixels, labels = catalog.select(dataset="gen").arrays()
        with Catalog.open(sources[1].parent / "b.db") as reference:
            reference.ingest(sources[1], dataset="gen")
            expected = reference.select(dataset="gen").arrays()
        assert np.array_equal(pixels, expected[0])
        assert np.array_equal(labels, expected[1])


def test_two_exports_into_one_folder_at_once(db_url: str, tmp_path: Path) -> None:
    """Both succeed; the folder holds each file once, and the catalog one row per path
    whose digest is the file's."""
    with Catalog.open(db_url) as catalog:
        catalog.ingest(TINY, dataset="tiny")
    out = tmp_path / "out"
    outcomes = run_together(db_url, [["export", str(out), "-j", "1"]] * 2)
    for outcome in outcomes:
        assert (outcome.code, outcome.err) == (0, ""), outcome.err
    files = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.png")}
    assert len(files) == 5
    with Catalog.open(db_url) as catalog, session_scope(catalog.engine) as session:
        rows = session.execute(select(ExportedFile.path, ExportedFile.sha256)).all()
        assert dict(rows) == files
        assert len(rows) == 5


def _pg_only(catalog: Catalog) -> None:
    if catalog.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's deadlock detector and backends")


def test_a_deadlock_is_a_one_line_busy_error(tiny_catalog: Catalog) -> None:
    """Two sessions lock two rows in opposite orders: PostgreSQL kills one, which
    surfaces as CatalogBusyError; the other commits."""
    _pg_only(tiny_catalog)
    tiny_catalog.ingest(TINY, dataset="tiny2")
    barrier = threading.Barrier(2, timeout=30)
    errors: list[Exception] = []

    def lock(first: str, second: str) -> None:
        try:
            with session_scope(tiny_catalog.engine, write=True) as session:
                for name in (first, second):
                    session.execute(
                        text("UPDATE datasets SET name = name WHERE name = :n"), {"n": name}
                    )
                    if name == first:
                        barrier.wait()
        except Exception as exc:  # noqa: BLE001 (the test inspects what each thread raised)
            errors.append(exc)

    threads = [
        threading.Thread(target=lock, args=pair) for pair in (("tiny", "tiny2"), ("tiny2", "tiny"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], CatalogBusyError)
    assert "deadlock detected" in str(errors[0])
    assert "run the command again" in str(errors[0])
    assert "\n" not in str(errors[0])


def test_a_lost_connection_is_a_one_line_error_and_the_next_session_works(
    tiny_catalog: Catalog, pg_admin: object
) -> None:
    """The server ends our backend mid-transaction (as a restart does): one-line
    CatalogConnectionError; the pool's pre-ping gives the next session a live one."""
    _pg_only(tiny_catalog)

    def terminated_midway() -> None:
        with session_scope(tiny_catalog.engine) as session:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
            with pg_admin.connect() as admin:  # type: ignore[attr-defined]
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            session.execute(text("SELECT 1"))

    with pytest.raises(CatalogConnectionError, match="Lost the connection to the catalog"):
        terminated_midway()
    assert tiny_catalog.select().count() == 5


def test_sqlite_locked_past_the_busy_timeout_is_a_one_line_busy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "busy.db"
    with Catalog.open(path) as catalog:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(CatalogBusyError, match="stayed locked by another writer"):
                catalog.ingest(TINY, dataset="tiny")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        catalog.ingest(TINY, dataset="tiny")
        assert catalog.select().count() == 5


def test_an_ingest_waits_for_another_ingest_of_its_dataset(catalog: Catalog) -> None:
    """While another transaction holds dataset ``tiny``'s lock, an ingest of ``tiny``
    says it waits and does wait; it lands once the lock is released."""
    _pg_only(catalog)
    messages: list[str] = []
    ingest = threading.Thread(
        target=lambda: catalog.ingest(TINY, dataset="tiny", on_wait=messages.append)
    )
    with session_scope(catalog.engine, write=True) as holder:
        lock_dataset(holder.connection(), "tiny")
        ingest.start()
        deadline = time.monotonic() + 30
        while not messages and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert ingest.is_alive()
        assert catalog.datasets() == []
    ingest.join(timeout=60)
    assert messages == ["waiting for another ingest of tiny..."]
    assert catalog.select(dataset="tiny").count() == 5
