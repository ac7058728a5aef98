"""Database driver errors a user can act on, as one-line :class:`CatalogError`s.

This is the one place that reads driver errors: :func:`catalog.db.engine.session_scope`
and the schema functions of :mod:`catalog.db.schema` pass every
:class:`sqlalchemy.exc.DBAPIError` through :func:`translate`. What it does not
recognise is re-raised unchanged, so a bug still shows its traceback.

PostgreSQL errors are told apart by SQLSTATE (psycopg's ``sqlstate``, psycopg2's
``pgcode``), SQLite's by their message, which is all that sqlite3 gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from catalog.errors import (
    CatalogBusyError,
    CatalogConnectionError,
    CatalogError,
    CatalogReadOnlyError,
)

#: SQLSTATE classes and codes (PostgreSQL "Errcodes" appendix).
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
LOCK_NOT_AVAILABLE = "55P03"
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"
UNIQUE_VIOLATION = "23505"
#: 08: connection exceptions; 57P01-57P03: the server is shutting down or starting.
CONNECTION_CODES = ("57P01", "57P02", "57P03")


def describe(url: URL) -> str:
    """The catalog's location as messages show it, without a password."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.set(query={}).render_as_string(hide_password=True)


def role_of(url: URL) -> str:
    """The role a URL connects as (the user name; PostgreSQL's default is the OS user)."""
    return url.username or "(the default role)"


def first_line(exc: BaseException) -> str:
    """The driver's message, first line only."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0].strip() if lines else type(orig).__name__


def sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def translate(exc: DBAPIError, url: URL) -> CatalogError | None:
    """The :class:`CatalogError` that ``exc`` means for the catalog at ``url``, or None."""
    where = describe(url)
    reason = first_line(exc)
    code = sqlstate(exc) or ""
    message = reason.lower()
    if code in (INSUFFICIENT_PRIVILEGE, READ_ONLY_TRANSACTION):
        msg = f"The catalog {where} is read-only for role {role_of(url)}: {reason}"
        return CatalogReadOnlyError(msg)
    if "readonly database" in message:
        msg = f"The catalog {where} is read-only here: {reason}"
        return CatalogReadOnlyError(msg)
    if exc.connection_invalidated or code.startswith("08") or code in CONNECTION_CODES:
        msg = (
            f"Lost the connection to the catalog {where}: {reason}; what was committed "
            "before is kept, run the command again"
        )
        return CatalogConnectionError(msg)
    if code in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE):
        msg = (
            f"The catalog {where} gave up this transaction in a conflict with another client "
            f"({reason}); nothing of it was kept, run the command again"
        )
        return CatalogBusyError(msg)
    if "database is locked" in message or "database table is locked" in message:
        msg = (
            f"The catalog {where} stayed locked by another writer past the busy timeout "
            f"({reason}); run the command again when it is done"
        )
        return CatalogBusyError(msg)
    if code == UNIQUE_VIOLATION or (not code and "unique constraint failed" in message):
        msg = (
            f"Another client wrote the same rows of the catalog {where} at the same time "
            f"({reason}); nothing of this command's transaction was kept, run it again"
        )
        return CatalogBusyError(msg)
    return None


@contextmanager
def translated(engine: Engine) -> Iterator[None]:
    """Re-raise driver errors that :func:`translate` knows as their CatalogError."""
    try:
        yield
    except DBAPIError as exc:
        error = translate(exc, engine.url)
        if error is None:
            raise
        raise error from exc
