"""How to open a catalog: its URL, the engine (SQLite tuned for many readers and one
writer at a time, or PostgreSQL), and sessions that are one transaction each.

A catalog lives in SQLite (the default, one file) or PostgreSQL (shared by a
team), addressed by a path or a SQLAlchemy URL. Its schema is owned by the
Alembic migrations in ``migrations/``; :mod:`catalog.db.schema` decides what opening
a catalog at another revision does (upgrade, refuse, or read only).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session

from catalog.db.translate import translated
from catalog.db.types import detect_bytewise_collation
from catalog.errors import CatalogLocationError, CatalogReadOnlyError, MissingExtraError

#: Environment variable naming the catalog when ``--db`` is not given.
DB_ENV = "MNIST_CATALOG_DB"
DEFAULT_DB = "catalog.db"
#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: Engine execution option that marks a catalog this client may only read; its
#: value is the message that refuses a write (set by :mod:`catalog.db.schema`).
READ_ONLY_OPTION = "catalog_read_only"

T = TypeVar("T")


def resolve_url(location: str | Path | None = None) -> URL:
    """Turn a path or SQLAlchemy URL (or ``$MNIST_CATALOG_DB``) into a URL.

    >>> resolve_url("postgresql+psycopg://db.example/team").drivername
    'postgresql+psycopg'
    >>> resolve_url("/tmp/mnist.db").database
    '/tmp/mnist.db'
    """
    if location is None:
        location = os.environ.get(DB_ENV) or DEFAULT_DB
    text = str(location)
    if "://" in text:
        try:
            return make_url(text)
        except ArgumentError as exc:
            msg = f"Invalid catalog URL {text!r}: {exc}"
            raise CatalogLocationError(msg) from None
    path = Path(text).expanduser()
    if path.is_dir():
        msg = f"Catalog path {path} is a folder; expected a file such as {path / DEFAULT_DB}"
        raise CatalogLocationError(msg)
    if not path.parent.exists():
        msg = f"Cannot create catalog {path}: folder {path.parent} does not exist"
        raise CatalogLocationError(msg)
    return URL.create("sqlite+pysqlite", database=str(path.resolve()))


def _enable_wal(cursor: Any) -> None:
    """Switch a new database to WAL (it persists in the file). Switching takes an
    exclusive lock that SQLite may refuse at once while another process opens the
    same new file, so a refusal is retried for up to the busy timeout."""
    import sqlite3
    import time

    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN issued by us (not by pysqlite)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself, so transactions (and DDL) are real.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # upgrades to writing cannot wait on the busy timeout, and fails.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(location: str | Path | None = None) -> Engine:
    """Create an engine for a catalog path or URL, without migrating it."""
    url = resolve_url(location)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        driver = (exc.name or url.drivername).split(".")[0]
        extra = ' (pip install "mnist-catalog[postgres]")' if "postgres" in url.drivername else ""
        msg = (
            f"Cannot open catalog {url.render_as_string(hide_password=True)}: "
            f"its driver {driver} is not installed{extra}"
        )
        raise MissingExtraError(msg) from None
    if url.get_backend_name() == "postgresql":
        detect_bytewise_collation(engine)
    return engine


def check_writable(engine: Engine) -> None:
    """Raise :class:`CatalogReadOnlyError` when this client may only read the catalog
    (a role without INSERT, or a schema newer than this client; see :mod:`catalog.db.schema`)."""
    reason = engine.get_execution_options().get(READ_ONLY_OPTION)
    if reason:
        raise CatalogReadOnlyError(reason)


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    ``write=True`` first checks that this client may write (:func:`check_writable`),
    then takes SQLite's write lock at BEGIN, so concurrent writers queue on the
    busy timeout instead of failing. Driver errors a user can act on (lost
    connection, no privilege, a conflict with another client) leave as one-line
    :class:`CatalogError`s (:mod:`catalog.db.translate`).
    """
    if write:
        check_writable(engine)
    with translated(engine), Session(engine, expire_on_commit=False) as session:
        try:
            if write:
                session.connection(execution_options={"sqlite_immediate": True})
            yield session
            session.commit()
        except BaseException:
            with suppress(DBAPIError):  # a lost connection cannot roll back; the server did
                session.rollback()
            raise


def write_if_allowed(session: Session, write: Callable[[], T]) -> tuple[bool, T | None]:
    """Run ``write`` in a savepoint of ``session`` and commit; ``(True, its result)``.

    For the work a reader keeps to be faster next time (an audit's embeddings,
    measures and kept searches): when the catalog refuses the write (a read-only
    file, a role without INSERT, a schema newer than this client) nothing is kept,
    the session is rolled back and ``(False, None)`` returned, and the reader goes on.
    """
    try:
        with session.begin_nested():
            result = write()
        session.commit()
    except DBAPIError:
        with suppress(DBAPIError):
            session.rollback()
        return False, None
    return True, result
