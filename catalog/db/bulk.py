"""Many rows in one driver call: the write path of ingest, decisions and exports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import UpdateBase


def bulk_executor(
    connection: Connection, statement: UpdateBase, columns: Sequence[str]
) -> Callable[[list[tuple[Any, ...]]], None]:
    """Return a function that runs ``statement`` for rows of ``columns`` values,
    as one driver-level executemany.

    The statement is compiled once by SQLAlchemy Core for the connection's
    dialect; rows go to the driver as tuples (or dicts, for named paramstyles),
    skipping the per-row parameter processing that costs more than SQLite's
    insert itself. Values must already be what the driver takes (str, int,
    bytes, datetime).
    """
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(columns))
    sql = str(compiled)
    positional = compiled.positiontup
    if positional is not None:
        order = [list(columns).index(name) for name in positional]
        identity = order == list(range(len(columns)))

        def run_positional(rows: list[tuple[Any, ...]]) -> None:
            params = rows if identity else [tuple(row[i] for i in order) for row in rows]
            connection.exec_driver_sql(sql, params)

        return run_positional

    def run_named(rows: list[tuple[Any, ...]]) -> None:
        connection.exec_driver_sql(sql, [dict(zip(columns, row, strict=True)) for row in rows])

    return run_named


def bulk_inserter(
    connection: Connection, table: Table, columns: Sequence[str]
) -> Callable[[list[tuple[Any, ...]]], None]:
    """:func:`bulk_executor` for a plain INSERT into ``table``."""
    return bulk_executor(connection, insert(table), columns)
