"""Locks that let many clients share one catalog.

On PostgreSQL these are transaction-level advisory locks
(``pg_advisory_xact_lock``): they are released when the transaction that took
them ends, by commit, rollback or a lost connection, so a killed client never
leaves one behind. Their keys include the schema (``current_schema()``), so
catalogs in different schemas of one database do not wait for each other.

On SQLite a writer holds the whole file's write lock from ``BEGIN IMMEDIATE``
(see :func:`catalog.db.engine.session_scope`), which already serialises migrations and
ingests; the functions here do nothing there.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: Called with a message when a lock is held by another client and we wait for it.
OnWait = Callable[[str], None]

_KEY = "hashtextextended(:name || ' ' || current_schema(), 0)"
_TRY = text(f"SELECT pg_try_advisory_xact_lock({_KEY})")
_WAIT = text(f"SELECT pg_advisory_xact_lock({_KEY})")


def _lock(connection: Connection, name: str, waiting: str, on_wait: OnWait | None) -> None:
    if connection.dialect.name != "postgresql":
        return
    if connection.execute(_TRY, {"name": name}).scalar():
        return
    if on_wait is not None:
        on_wait(waiting)
    connection.execute(_WAIT, {"name": name})


def lock_migrations(connection: Connection, on_wait: OnWait | None = None) -> None:
    """Hold the catalog's migration lock until ``connection``'s transaction ends."""
    _lock(connection, "mnist-catalog migrate", "waiting for another client's upgrade...", on_wait)


def lock_dataset(connection: Connection, dataset: str, on_wait: OnWait | None = None) -> None:
    """Hold ``dataset``'s ingest lock until ``connection``'s transaction ends.

    Two ingests of one dataset so run one after the other: the second sees what
    the first committed (same content: nothing to do; other content: a conflict).
    """
    waiting = f"waiting for another ingest of {dataset}..."
    _lock(connection, f"mnist-catalog ingest {dataset}", waiting, on_wait)
