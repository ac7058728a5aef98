"""Column types and expressions that behave the same on SQLite and PostgreSQL.

- :class:`UTCDateTime`: timestamps come back timezone-aware (UTC) on both.
  SQLite has no time zones and SQLAlchemy returns its datetimes naive.
- :func:`bytewise`: order text by its bytes (code points), as SQLite's BINARY
  collation does, whatever collation the PostgreSQL database was created with
  (``en_US.UTF-8`` puts ``train_b`` before ``train-a``; ``C`` does not). A
  seeded sample draws from the rows in this order, so it picks the same images
  on both backends.
- :data:`LABEL`: a label, a 32-bit integer (0 to 2,147,483,647) on both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, Integer, SmallInteger, String, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

#: The type of a label column (images, label counts, decisions, image state): INTEGER.
#: SQLite's tables keep the SMALLINT they were made with: a SQLite column holds any
#: integer whatever its declared type, and changing the declaration would rebuild
#: ``images`` (migration 0014 widens the PostgreSQL columns only).
LABEL = Integer().with_variant(SmallInteger(), "sqlite")

#: Database collations that already order UTF-8 text by code point.
BYTEWISE_COLLATIONS = frozenset({"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"})
#: Set on a PostgreSQL dialect when its database's collation is bytewise.
_BYTEWISE_ATTR = "mnist_catalog_bytewise_default"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: stored as UTC wall time
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class bytewise(FunctionElement[str]):  # lower case, like the SQL function it stands for
    """``expr`` for ORDER BY, ordered by code point on every backend."""

    type = String()
    name = "bytewise"
    inherit_cache = True


@compiles(bytewise)
def _bytewise_default(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    if getattr(compiler.dialect, _BYTEWISE_ATTR, False):
        return inner  # keeps the plain index usable for the ORDER BY
    return f'({inner}) COLLATE "C"'


def detect_bytewise_collation(engine: Engine) -> None:
    """On first connect, note whether the PostgreSQL database already collates bytewise."""

    @event.listens_for(engine, "first_connect")
    def on_first_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # datlocprovider (PostgreSQL 15+) is 'i' for ICU databases, whose collation
        # is ICU's even though datcollate names a libc one; older servers lack it.
        cursor.execute(
            "SELECT datcollate, to_jsonb(d) ->> 'datlocprovider' FROM pg_database AS d "
            "WHERE datname = current_database()"
        )
        row = cursor.fetchone()
        cursor.close()
        plain = row is not None and row[0] in BYTEWISE_COLLATIONS and row[1] in (None, "c")
        setattr(engine.dialect, _BYTEWISE_ATTR, plain)
