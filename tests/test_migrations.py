"""The schema is owned by Alembic: fresh and old catalogs are upgraded on open."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from catalog import Catalog
from catalog.db.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine
from catalog.db.schema import alembic_config, current_revision, head_revision, upgrade


def test_fresh_catalog_is_at_head_and_matches_the_models(db_url: str) -> None:
    with Catalog.open(db_url) as catalog:
        engine = catalog.engine
        assert current_revision(engine) == head_revision(engine)
        cfg = alembic_config(engine)
        with engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.check(cfg)  # raises when models and migrations differ
        tables = set(inspect(engine).get_table_names())
    assert {"datasets", "sources", "images", "exports", "exported_files"} <= tables


def test_old_catalog_is_upgraded_on_open_and_keeps_its_rows(db_url: str) -> None:
    """SQLite upgrades on open; a shared PostgreSQL catalog is refused until
    ``db upgrade`` (see test_sharing.py), then opens with its rows."""
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "exports" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (name, created_at) VALUES ('old', '2020-01-01')"))
    if engine.dialect.name != "sqlite":
        upgrade(engine)
    engine.dispose()

    with Catalog.open(db_url) as catalog:
        assert current_revision(catalog.engine) == head_revision(catalog.engine)
        assert [d.name for d in catalog.datasets()] == ["old"]
        assert "exports" in inspect(catalog.engine).get_table_names()


def test_migrations_downgrade_to_empty_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    cfg = alembic_config(engine)
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
        connection.commit()
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_sqlite_catalog_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "wal.db"
    with Catalog.open(path) as catalog, catalog.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
