"""The database file itself: SQLite's ``PRAGMA integrity_check`` (pages, b-trees, and
every index against its table). PostgreSQL keeps its own pages; nothing is read there."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from catalog.integrity.report import Found, Progress

#: Problems SQLite lists at most (it stops there).
MOST_LISTED = 100


def run(session: Session, found: Found, progress: Progress | None) -> int:
    """Run SQLite's check; returns 1 for the file checked, 0 on another backend."""
    if session.get_bind().dialect.name != "sqlite":
        return 0
    lines = session.execute(text(f"PRAGMA integrity_check({MOST_LISTED})")).scalars().all()
    for line in lines:
        if line != "ok":
            found.add("storage", "the database file", f"fails SQLite's integrity check: {line}")
    return 1
