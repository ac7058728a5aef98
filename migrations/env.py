"""Alembic environment: runs on a connection handed in by catalog.db.schema.upgrade,
or, from the ``alembic`` command line, on ``-x db=PATH_OR_URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import catalog.db.models  # noqa: F401  (registers every table)
from catalog.db.engine import make_engine
from catalog.db.models.base import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite has almost no ALTER TABLE
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    location = context.get_x_argument(as_dictionary=True).get("db")
    engine = make_engine(location)
    with engine.connect() as conn:
        run_on(conn.execution_options(sqlite_immediate=True))
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    msg = "Offline (--sql) migrations are not supported; pass -x db=PATH_OR_URL"
    raise SystemExit(msg)
run_migrations_online()
