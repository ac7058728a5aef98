"""A catalog shared by several clients: opening and migrating at once, old and new
schemas, a missing driver. Writers racing each other are in test_writers.py.

The commands run as real processes started together (tests/clients.py), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from clients import one_line_error, run_together
from sqlalchemy import text

from catalog import Catalog
from catalog.db.engine import make_engine
from catalog.db.schema import current_revision, head_revision, upgrade
from catalog.errors import CatalogReadOnlyError, SchemaOutdatedError

TINY = Path(__file__).parent / "data" / "tiny"
CLIENTS = 4
WAITING = "waiting for another client's upgrade...\n"


def test_many_clients_open_a_new_catalog_at_once(db_url: str) -> None:
    """Four ingests started together on an empty catalog: the migrations run once
    (under the lock), every client succeeds, and the schema is at head."""
    outcomes = run_together(
        db_url, [["ingest", str(TINY), "--dataset", f"tiny{i}"] for i in range(CLIENTS)]
    )
    for outcome in outcomes:  # a client that found the lock taken says it waits
        assert (outcome.code, outcome.err) in {(0, ""), (0, WAITING)}, outcome
    with Catalog.open(db_url) as catalog:
        assert sorted(d.name for d in catalog.datasets()) == [f"tiny{i}" for i in range(CLIENTS)]
        assert current_revision(catalog.engine) == head_revision(catalog.engine)


def test_many_clients_open_an_old_catalog_at_once(db_url: str) -> None:
    """A catalog at revision 0001 opened by four clients at once.

    SQLite: every client succeeds and the file ends at head (upgraded once).
    PostgreSQL: no client migrates it; each says in one line to run
    ``mnist-catalog db upgrade``; then four ``db upgrade`` at once all succeed."""
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (name, created_at) VALUES ('old', '2020-01-01')"))
    head = head_revision(engine)
    outcomes = run_together(db_url, [["datasets", "--json"]] * CLIENTS)
    if engine.dialect.name == "sqlite":
        assert [(o.code, o.err) for o in outcomes] == [(0, "")] * CLIENTS
        assert all('"name": "old"' in o.out for o in outcomes)
    else:
        for outcome in outcomes:
            assert one_line_error(
                outcome, "is at schema revision 0001", f"needs {head}", "mnist-catalog db upgrade"
            ), outcome
        assert current_revision(engine) == "0001"
        upgrades = run_together(db_url, [["db", "upgrade"]] * CLIENTS)
        for outcome in upgrades:
            assert (outcome.code, outcome.err) in {(0, ""), (0, WAITING)}, outcome
            assert outcome.out.startswith(f"Catalog at revision {head}")
    assert current_revision(engine) == head
    engine.dispose()
    with Catalog.open(db_url) as catalog:
        assert [d.name for d in catalog.datasets()] == ["old"]


def test_postgresql_catalog_is_not_migrated_on_open(backend: str, db_url: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite files upgrade on open")
    engine = make_engine(db_url)
    upgrade(engine, "0002")
    with pytest.raises(SchemaOutdatedError, match=re.escape("run `mnist-catalog db upgrade`")):
        Catalog.open(db_url)
    assert current_revision(engine) == "0002"
    engine.dispose()


def test_a_client_older_than_the_schema_reads_but_refuses_to_write(
    db_url: str, tmp_path: Path
) -> None:
    """The catalog is at a revision this client does not know (a newer client
    upgraded it): reads work, every write is refused in one line, nothing changes."""
    with Catalog.open(db_url) as catalog:
        catalog.ingest(TINY, dataset="tiny")
        with catalog.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with Catalog.open(db_url) as catalog:
        assert not catalog.writable
        assert [d.name for d in catalog.datasets()] == ["tiny"]
        pixels, labels = catalog.select(dataset="tiny").arrays()
        assert (pixels.shape, labels.shape) == ((5, 28, 28), (5,))
        expected = "is at schema revision 9999, newer than this mnist-catalog knows"
        with pytest.raises(CatalogReadOnlyError, match=expected):
            catalog.ingest(TINY, dataset="other")
        with pytest.raises(CatalogReadOnlyError, match=expected):
            catalog.select().export(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    ingest, export, upgrade, count = run_together(
        db_url,
        [
            ["ingest", str(TINY), "--dataset", "other"],
            ["export", str(tmp_path / "out2")],
            ["db", "upgrade"],
            ["count"],
        ],
    )
    for outcome in (ingest, export, upgrade):
        assert one_line_error(outcome, expected, "upgrade mnist-catalog"), outcome
    assert (count.code, count.out) == (0, "5\n")
    with Catalog.open(db_url) as catalog:
        assert [d.name for d in catalog.datasets()] == ["tiny"]
        assert catalog.exports() == []


def test_postgresql_url_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    """With psycopg not importable, ``--db postgresql+psycopg://...`` is one line
    naming the extra, exit 1, no traceback."""
    blocker = (
        "import sys; sys.modules['psycopg'] = None\n"  # makes `import psycopg` fail
        "from catalog.cli import app\n"
        "app(args=sys.argv[1:], prog_name='mnist-catalog')\n"
    )
    url = "postgresql+psycopg://team@127.0.0.1:5432/catalog"
    done = subprocess.run(
        [sys.executable, "-c", blocker, "--db", url, "datasets"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"Error: Cannot open catalog {url}: its driver psycopg is not installed "
        '(pip install "mnist-catalog[postgres]")\n'
    )
