"""Opening a catalog: its schema revision, upgrades under a lock, and who may write.

The schema is owned by the Alembic migrations in ``migrations/``. What opening
does with a catalog whose revision is not this client's newest (its *head*):

- SQLite file, older or empty: upgraded on open, under the file's write lock.
- PostgreSQL, empty (no revision yet): created on open, under an advisory lock,
  so that starting a team catalog is one step and nobody's data can be in the way.
- PostgreSQL, older: refused with a one-line error pointing at
  ``mnist-catalog db upgrade``. A shared catalog changes schema when someone
  decides to, with a role that may, not as a side effect of a query.
- Newer than this client knows (either backend): opened read-only; reads work,
  writes are refused with a message saying to upgrade mnist-catalog.

A PostgreSQL role that may not write the tables opens the catalog read-only too,
without trying to migrate or write anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DatabaseError

from catalog.db.engine import READ_ONLY_OPTION, make_engine
from catalog.db.locks import OnWait, lock_migrations
from catalog.db.translate import describe, first_line, translated
from catalog.errors import CatalogLocationError, CatalogReadOnlyError, SchemaOutdatedError

#: The tables a writing client writes; a role without INSERT on one of them only reads.
WRITTEN_TABLES = ("datasets", "sources", "images", "exports", "exported_files")


def migrations_dir() -> Path:
    """The Alembic script folder: packaged with the wheel, or at the repo root."""
    package = Path(__file__).resolve().parents[1]  # catalog/
    packaged = package / "migrations"
    if (packaged / "env.py").exists():
        return packaged
    return package.parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Any:
    import sys

    from alembic.config import Config

    # Config's stdout default is sys.stdout as it was when alembic.config was first
    # imported (perhaps under a test runner's capture, closed since): pass today's.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def head_revision(engine: Engine | None = None) -> str | None:
    """The newest revision this client knows.

    Read from the scripts' ``revision`` and ``down_revision`` lines, without importing
    Alembic (a short command such as ``count`` would pay for it); when they do not give
    exactly one head, Alembic's script directory decides.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations_dir() / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        revisions.update(_REVISION.findall(source))
        parents.update(_DOWN.findall(source))
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def is_known(revision: str) -> bool:
    """Whether this client's migrations include ``revision``."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The schema revision the catalog is at, or None for an empty database (one query,
    without importing Alembic)."""
    with translated(engine), engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if found is None else str(found)


def _newer_message(engine: Engine, current: str) -> str:
    return (
        f"The catalog {describe(engine.url)} is at schema revision {current}, newer than "
        f"this mnist-catalog knows (newest {head_revision()}): upgrade mnist-catalog to write to it"
    )


def upgrade(engine: Engine, revision: str = "head", on_wait: OnWait | None = None) -> None:
    """Bring the catalog's schema to ``revision`` (default: the newest), one client at a time.

    The migration lock (PostgreSQL: an advisory lock; SQLite: the write lock) is
    taken before Alembic reads the current revision, so clients that upgrade at
    once run the migrations once; the others find the schema done.

    Raises
    ------
    CatalogReadOnlyError
        When the catalog is newer than this client, or the role may not change it.
    """
    from alembic import command

    current = current_revision(engine)
    if current is not None and not is_known(current):
        raise CatalogReadOnlyError(_newer_message(engine, current))
    cfg = alembic_config(engine)
    with translated(engine), engine.connect() as connection:
        connection = connection.execution_options(sqlite_immediate=True)
        # One transaction for the whole upgrade, begun before Alembic looks: Alembic
        # then leaves it alone (on SQLite it would otherwise commit after each
        # revision, letting another client in between with a stale idea of the head).
        connection.begin()
        lock_migrations(connection, on_wait)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        connection.commit()


def open_engine(location: str | Path | None = None, on_wait: OnWait | None = None) -> Engine:
    """Create an engine for the catalog at ``location``, ready for this client.

    See the module docstring for what happens to a catalog not at the newest
    revision. A catalog this client may only read comes back as an engine whose
    :func:`catalog.db.engine.check_writable` raises :class:`CatalogReadOnlyError`.

    Raises
    ------
    SchemaOutdatedError
        A PostgreSQL catalog at an older revision.
    CatalogLocationError
        When the catalog cannot be reached or is not a catalog.
    """
    engine = make_engine(location)
    try:
        return _prepare(engine, on_wait)
    except DatabaseError as exc:
        engine.dispose()
        msg = f"Cannot open catalog {describe(engine.url)}: {first_line(exc)}"
        raise CatalogLocationError(msg) from None
    except BaseException:
        engine.dispose()
        raise


def _prepare(engine: Engine, on_wait: OnWait | None) -> Engine:
    head = head_revision()
    current = current_revision(engine)
    if current != head:
        if current is not None and not is_known(current):
            return engine.execution_options(**{READ_ONLY_OPTION: _newer_message(engine, current)})
        if current is not None and engine.dialect.name != "sqlite":
            msg = (
                f"The catalog {describe(engine.url)} is at schema revision {current}, "
                f"this mnist-catalog needs {head}: run `mnist-catalog db upgrade` "
                "(as a role that may change the schema)"
            )
            raise SchemaOutdatedError(msg)
        upgrade(engine, on_wait=on_wait)
    denied = _unwritable_table(engine)
    if denied is not None:
        user, table = denied
        msg = (
            f"The catalog {describe(engine.url)} is read-only for role {user}: "
            f"it may not write table {table}"
        )
        return engine.execution_options(**{READ_ONLY_OPTION: msg})
    return engine


def _unwritable_table(engine: Engine) -> tuple[str, str] | None:
    """(role, table) for the first table the PostgreSQL role may not insert into."""
    if engine.dialect.name != "postgresql":
        return None
    checks = ", ".join(f"has_table_privilege('{t}', 'INSERT')" for t in WRITTEN_TABLES)
    with translated(engine), engine.connect() as connection:
        row = connection.execute(text(f"SELECT current_user, {checks}")).one()
    for table, allowed in zip(WRITTEN_TABLES, row[1:], strict=True):
        if not allowed:
            return str(row[0]), table
    return None
