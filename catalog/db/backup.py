"""A consistent copy of a catalog while others read and write it (``db backup OUT``).

SQLite: SQLite's online backup API (:meth:`sqlite3.Connection.backup`) copies the file's
pages, :data:`STEP_PAGES` at a time, into a temporary file beside ``OUT``, which is
flushed to disk and then moved into place, so ``OUT`` is never a half-written catalog.
Each step reads one snapshot and lets go between steps; when another connection commits
in between, SQLite starts the copy over, so the copy is always of one moment. A catalog
that commits again and again could keep restarting it: after :data:`MOST_RESTARTS`
restarts the rest is copied in one step, one read transaction, which in WAL mode (every
catalog) does not block writers either. ``OUT`` is a catalog: ``--db OUT`` opens it.

PostgreSQL: ``pg_dump`` (a snapshot of its own, while others write) of the catalog's
schema in its custom format, when it is on PATH; restored with ``pg_restore``. Without
it, a one-line error says how to run it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from catalog.db.translate import describe
from catalog.errors import BackupError

#: Pages copied per step of SQLite's backup (4 MiB of 4 KiB pages): how long a step
#: holds its read of the catalog.
STEP_PAGES = 1024
#: Copies started over (another connection committed) before the rest goes in one step.
MOST_RESTARTS = 3
#: Seconds pg_dump may take.
PG_DUMP_TIMEOUT = 24 * 3600

#: ``progress(done, total)``: pages copied of the catalog's pages.
PageProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Backup:
    """A backup that was written: where, how big, how, and how to bring it back."""

    path: Path
    size: int  # bytes
    method: str  # "SQLite online backup", "pg_dump (custom format)"
    seconds: float
    restarts: int = 0  # SQLite: copies started over because another connection committed
    restore: str = ""  # how to restore it (PostgreSQL)


def backup_catalog(engine: Engine, out: Path, progress: PageProgress | None = None) -> Backup:
    """Write a consistent copy of the catalog ``engine`` opens to the new file ``out``.

    Raises
    ------
    BackupError
        When ``out`` exists or its folder does not, when pg_dump is missing or fails, or
        for a backend other than SQLite and PostgreSQL.
    """
    out = _target(out)
    start = time.perf_counter()
    backend = engine.dialect.name
    if backend == "sqlite":
        restarts = _write_atomically(out, lambda tmp: _copy_sqlite(engine, tmp, progress))
        method, restore = "SQLite online backup", ""
    elif backend == "postgresql":
        restarts = _write_atomically(out, lambda tmp: _pg_dump(engine, tmp))
        method = "pg_dump (custom format)"
        restore = (
            f"Restore it into an empty database with: pg_restore --no-owner --dbname URL {out}"
        )
    else:
        msg = f"Cannot back up {describe(engine.url)}: only SQLite and PostgreSQL catalogs"
        raise BackupError(msg)
    seconds = time.perf_counter() - start
    return Backup(out, out.stat().st_size, method, seconds, restarts, restore)


def _target(out: Path) -> Path:
    out = out.expanduser().absolute()
    if not out.parent.is_dir():
        msg = f"Cannot back up to {out}: folder {out.parent} does not exist"
        raise BackupError(msg)
    for taken in (out, out.with_name(f"{out.name}-wal"), out.with_name(f"{out.name}-journal")):
        if taken.exists() or taken.is_symlink():
            msg = f"Cannot back up to {out}: {taken.name} exists; remove it or choose a new name"
            raise BackupError(msg)
    return out


def _write_atomically(out: Path, write: Callable[[Path], int]) -> int:
    """Run ``write(tmp)`` on a temporary name beside ``out``, flush it, move it into place."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        result = write(tmp)
        _fsync(tmp)
        os.replace(tmp, out)
    except BaseException:
        for left in (tmp, tmp.with_name(f"{tmp.name}-wal"), tmp.with_name(f"{tmp.name}-shm"),
                     tmp.with_name(f"{tmp.name}-journal")):  # fmt: skip
            left.unlink(missing_ok=True)
        raise
    _fsync(out.parent)
    return result


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _StartedOver(Exception):
    """Another connection committed between two steps: SQLite started the copy over."""


def _copy_sqlite(engine: Engine, tmp: Path, progress: PageProgress | None) -> int:
    """Copy the catalog's pages into ``tmp``; returns how often the copy started over."""
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        target = sqlite3.connect(tmp)
        try:
            return _steps(source, target, progress)
        finally:
            target.close()
    except sqlite3.Error as exc:
        msg = f"Cannot back up {describe(engine.url)}: {exc}"
        raise BackupError(msg) from None
    finally:
        raw.close()


def _steps(
    source: sqlite3.Connection, target: sqlite3.Connection, progress: PageProgress | None
) -> int:
    """Copy in steps; returns how often the copy started over."""
    restarts = 0
    while True:
        pages = STEP_PAGES if restarts < MOST_RESTARTS else -1
        try:
            source.backup(target, pages=pages, progress=_Watch(progress).step)
        except _StartedOver:
            restarts += 1
            continue
        return restarts


class _Watch:
    """Follows the steps of one copy, and tells when it started over."""

    def __init__(self, progress: PageProgress | None) -> None:
        self.progress = progress
        self.left: int | None = None  # pages left after the last step

    def step(self, status: int, remaining: int, total: int) -> None:
        # A step that copied and yet left no fewer pages: the copy started over.
        if status == sqlite3.SQLITE_OK and self.left is not None and remaining >= self.left:
            raise _StartedOver
        self.left = remaining
        if self.progress is not None:
            self.progress(total - remaining, total)


def _pg_dump(engine: Engine, tmp: Path) -> int:
    """Dump the catalog's schema with pg_dump into ``tmp`` (custom format)."""
    with engine.connect() as connection:
        schema = str(connection.execute(text("SELECT current_schema()")).scalar())
    url = engine.url.set(drivername="postgresql", password=None)
    uri = url.render_as_string(hide_password=False)
    program = shutil.which("pg_dump")
    if program is None:
        msg = (
            f"Cannot back up {describe(engine.url)}: pg_dump is not on PATH; install the "
            f"PostgreSQL client tools, or run pg_dump --format=custom --schema={schema} "
            f"--file=OUT {describe(url)}"
        )
        raise BackupError(msg)
    env = dict(os.environ)
    if engine.url.password is not None:
        env["PGPASSWORD"] = str(engine.url.password)  # not on the command line, which ps shows
    command = [program, "--format=custom", f"--schema={schema}", f"--file={tmp}",
               "--no-password", f"--dbname={uri}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=PG_DUMP_TIMEOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[0]
        msg = f"Cannot back up {describe(engine.url)}: pg_dump failed: {said}"
        raise BackupError(msg)
    return 0
