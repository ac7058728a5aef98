"""Recording an export in the catalog: its row first, then its files chunk by chunk.

File rows are committed chunk by chunk, so an interrupted export has recorded
what it wrote and a re-run finishes the job. Every output format records
through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog.curation.log import latest_decision
from catalog.db.bulk import bulk_executor
from catalog.db.models.base import utcnow
from catalog.db.models.exports import Export, ExportedFile
from catalog.db.models.images import Dataset
from catalog.errors import ExportError
from catalog.export.file_rows import SKIPPED, WRITTEN, FileOutcome
from catalog.select.counts import count_selected
from catalog.select.ids import Chosen, select_ids
from catalog.versions.freeze import version_stamp

FILE_COLUMNS = ("export_id", "image_id", "path", "format", "size", "sha256", "written_at")


def begin_write(session: Session) -> None:
    """Start the session's next transaction as a writer (SQLite: BEGIN IMMEDIATE), so
    that it waits for other writers on the busy timeout instead of failing."""
    session.connection(execution_options={"sqlite_immediate": True})


def start_export(
    session: Session,
    chosen: Chosen,
    root: Path,
    layout: str,
    fmt: str,
    *,
    output: str = "folder",
) -> tuple[Export, int, dict[int, str]]:
    """Record a new export of ``chosen`` into ``root`` as ``output`` (a key of
    :data:`catalog.export.formats.WRITERS`); returns the committed record, the
    number of images selected and dataset names by id."""
    selection = chosen.selection
    total = chosen.count()
    if total is None:
        total = count_selected(session, selection)
    names: dict[int, str] = {
        row.id: row.name for row in session.execute(select(Dataset.id, Dataset.name))
    }
    state = latest_decision(session)  # the decisions this export reflects
    recorded = selection.to_json()
    stamp = version_stamp(session, selection)
    if stamp is not None:
        recorded["content_id"] = stamp[1]
    if selection.is_random:
        # The ids a sample picked, so the export can be repeated exactly even if
        # the sampler (or numpy's generator) ever changes.
        ids = chosen.ids if chosen.ids is not None else select_ids(session, selection)
        recorded["chosen_ids"] = ids.tolist()
    session.commit()  # SQLite cannot turn a read into a write once another process wrote
    record = Export(
        root=str(root), selection=recorded, output=output, layout=layout, format=fmt,
        count=total, decision_id=state,
    )  # fmt: skip
    begin_write(session)
    session.add(record)
    session.commit()
    return record, total, names


class FileRecorder:
    """Upserts file rows: a new write replaces a path's row, a kept file keeps its own."""

    def __init__(self, session: Session, export_id: int, root: Path, fmt: str) -> None:
        dialect = session.get_bind().dialect.name
        insert: Callable[..., Any]
        if dialect == "postgresql":
            insert = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:
            msg = f"Exports need SQLite or PostgreSQL, not {dialect}"
            raise ExportError(msg)
        self.session = session
        self.export_id = export_id
        self.root = root
        self.fmt = fmt
        table = cast(Table, ExportedFile.__table__)
        replace = insert(table)
        replace = replace.on_conflict_do_update(
            index_elements=["path"],
            set_={name: replace.excluded[name] for name in FILE_COLUMNS if name != "path"},
        )
        keep = insert(table).on_conflict_do_nothing(index_elements=["path"])
        self.statements = (replace, keep)
        # Rows go to the driver as they are: convert the timestamp as Core would.
        bound = session.get_bind().dialect
        written_at = table.c.written_at.type.dialect_impl(bound).bind_processor(bound)
        self.to_driver: Callable[[Any], Any] = written_at or (lambda value: value)

    def record(self, files: Sequence[FileOutcome]) -> tuple[int, int]:
        """Record one chunk's files; returns (written, kept) counts."""
        now = self.to_driver(utcnow())
        root = str(self.root)
        written: list[tuple[Any, ...]] = []
        kept: list[tuple[Any, ...]] = []
        for file in files:
            row = (
                self.export_id, file.image_id, f"{root}/{file.path}", self.fmt, file.size,
                file.file_sha256, now,
            )  # fmt: skip
            if file.status == WRITTEN:
                written.append(row)
            elif file.status == SKIPPED:
                kept.append(row)
        connection = self.session.connection()
        replace, keep = self.statements
        if written:
            bulk_executor(connection, replace, FILE_COLUMNS)(written)
        if kept:
            bulk_executor(connection, keep, FILE_COLUMNS)(kept)
        return len(written), len(kept)
