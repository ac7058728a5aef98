"""Freezing a selection into a version, and reading versions back.

:func:`freeze_version` reads the selection's images (place, pixel digest, label as the
selection reports it, latest decision) in one query, hashes them
(:func:`catalog.versions.content.content_id`) and writes them with one bulk insert:
70,000 MNIST images freeze in well under a second (``benchmarks/versions.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, cast

from sqlalchemy import Select, Table, insert, literal, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.models.images import Dataset, Image
from catalog.db.models.versions import Version, VersionImage
from catalog.db.types import bytewise
from catalog.errors import VersionError
from catalog.facts.label_sets import label_set
from catalog.select.filters import (
    is_contiguous,
    label_column,
    selection_query,
    state_columns,
    with_state,
)
from catalog.select.ids import id_chunks, select_ids
from catalog.select.versioned import sources_key
from catalog.selection import Selection
from catalog.versions.content import check_version_name, content_id

IMAGE_COLUMNS = ("version_id", "split", "idx", "image_id", "sha256", "label", "decision_id")

#: One image of a version, as the driver returns it: ``(split, index, sha256, label)``
#: (rows, not objects: a version of 70,000 images is read in tens of milliseconds).
Frozen: TypeAlias = Sequence[Any]


@dataclass(frozen=True)
class VersionInfo:
    """A version as ``versions`` lists it."""

    name: str
    dataset: str
    content_id: str
    count: int
    splits: dict[str, int]
    note: str | None
    author: str
    created_at: datetime
    decision_id: int | None
    imported: bool
    label_names: dict[str, str]
    selection: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "dataset": self.dataset, "content_id": self.content_id,
            "count": self.count, "splits": self.splits, "note": self.note, "by": self.author,
            "created_at": self.created_at.isoformat(), "decision_id": self.decision_id,
            "imported": self.imported, "label_names": self.label_names,
            "selection": self.selection,
        }  # fmt: skip


def info_of(row: Version) -> VersionInfo:
    return VersionInfo(
        row.name, row.dataset, row.content_id, row.count, dict(row.splits), row.note,
        row.author, row.created_at, row.decision_id, row.imported, dict(row.label_names),
        dict(row.selection),
    )  # fmt: skip


def driver_rows(session: Session, statement: Select[*tuple[Any, ...]]) -> list[Frozen]:
    """The rows of ``statement`` as the driver returns them (tuples).

    Read through the DB-API cursor of the session's connection: a version's 70,000
    rows cost about 0.1 s in SQLite, and as much again to become SQLAlchemy ``Row``
    objects, which nothing here needs. (The values are plain text and integers, which
    need no bind or result processing.)
    """
    connection = session.connection()
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    args: Any = (
        params
        if compiled.positiontup is None
        else tuple(params[name] for name in compiled.positiontup)
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def selected_images(session: Session, selection: Selection) -> list[Frozen]:
    """The selection's images as a version freezes them: ``(split, index, sha256,
    label)`` rows in (split, index) order."""
    columns = (Image.split, Image.index, Image.sha256, label_column(selection))
    if is_contiguous(selection):
        _, query = selection_query(session, selection)
        return driver_rows(session, query.with_only_columns(*columns))
    found: list[Frozen] = []
    for chunk in id_chunks(select_ids(session, selection)):
        query = with_state(select(*columns), selection).where(Image.id.in_(chunk.tolist()))
        found += driver_rows(session, query)
    found.sort(key=lambda image: (image[0].encode(), image[1]))
    return found


def check_free(session: Session, name: str) -> None:
    """Refuse a bad name, or one a version already has (versions are never edited)."""
    check_version_name(name)
    if session.scalar(select(Version.id).where(Version.name == name)) is not None:
        msg = f"Version {name!r} already exists: versions are never edited, pick a new name"
        raise VersionError(msg)


def store_version(
    session: Session, version: Version, images: Sequence[Sequence[Any]] | None = None
) -> VersionInfo:
    """Write ``version``, with ``images`` (``IMAGE_COLUMNS`` rows but the version id, in
    one bulk insert) or its images already written by a caller that was handed the
    version's id (``images`` None); then its content id, count and splits from them.

    Raises
    ------
    VersionError
        If the version holds no images, or its content id is not the one it names.
    """
    expected = version.content_id
    version.content_id, version.count, version.splits = "", 0, {}
    session.add(version)
    session.flush()
    if images is not None:
        insert = bulk_inserter(
            session.connection(), cast(Table, VersionImage.__table__), IMAGE_COLUMNS
        )
        for start in range(0, len(images), 50_000):
            insert([(version.id, *image) for image in images[start : start + 50_000]])
    rows = version_images(session, version)
    if not rows:
        msg = f"The selection holds no images: version {version.name!r} would be empty"
        raise VersionError(msg)
    version.content_id = content_id(version.dataset, rows)
    if expected and expected != version.content_id:
        msg = (
            f"Version {version.name!r}: its images give content id {version.content_id[:12]}, "
            f"not {expected[:12]}"
        )
        raise VersionError(msg)
    version.count = len(rows)
    version.splits = dict(sorted(Counter(row[0] for row in rows).items()))
    if not version.label_names:
        labels = label_set(session, version.dataset_id)
        used = sorted({row[3] for row in rows if row[3] is not None})
        version.label_names = {str(n): labels.name(n) for n in used}
    session.flush()
    return info_of(version)


def freeze_version(
    session: Session,
    selection: Selection,
    name: str,
    *,
    note: str | None = None,
    author: str,
    decision_id: int | None,
) -> VersionInfo:
    """Freeze the selection's images, with their labels now, as version ``name``, by
    ``author``; ``decision_id`` is the latest decision in the log (read in ``session``,
    :func:`catalog.curation.log.latest_decision`: the position the version saw).

    A selection of filters alone is copied by one ``INSERT ... SELECT`` in the
    database; a sampled one by its ids, in one bulk insert.

    Raises
    ------
    VersionError
        If ``name`` is bad or taken, or the selection holds no images.
    """
    check_free(session, name)
    ds, query = selection_query(session, selection)  # checks the dataset and splits first
    dataset = session.get(Dataset, ds)
    assert dataset is not None
    version = Version(
        name=name, dataset_id=ds, dataset=dataset.name, content_id="", count=0, splits={},
        label_names={},
        selection=selection.to_json(), decision_id=decision_id, note=note, author=author,
        imported=False, sources_key=sources_key(session, ds),
    )  # fmt: skip
    session.add(version)
    session.flush()
    columns = (
        Image.split, Image.index, Image.id, Image.sha256, label_column(selection),
        state_columns(selection)[3],
    )  # fmt: skip
    if is_contiguous(selection):
        copied = query.with_only_columns(literal(version.id), *columns).order_by(None)
        session.execute(insert(VersionImage).from_select(list(IMAGE_COLUMNS), copied))
        return store_version(session, version)
    rows: list[Sequence[Any]] = []
    for chunk in id_chunks(select_ids(session, selection)):
        part = with_state(select(*columns), selection).where(Image.id.in_(chunk.tolist()))
        rows += driver_rows(session, part)
    return store_version(session, version, rows)


def list_versions(session: Session) -> list[VersionInfo]:
    """Every version, oldest first."""
    return [info_of(row) for row in session.scalars(select(Version).order_by(Version.id))]


def get_version(session: Session, name: str) -> Version:
    """The version named ``name``, or a one-line :class:`VersionError`."""
    check_version_name(name)
    row = session.scalars(select(Version).where(Version.name == name)).one_or_none()
    if row is None:
        names = ", ".join(session.scalars(select(Version.name).order_by(Version.id))) or "none"
        msg = f"No version named {name!r} in the catalog (versions: {names})"
        raise VersionError(msg)
    return row


def version_images(session: Session, version: Version) -> list[Frozen]:
    """The images ``version`` froze: ``(split, index, sha256, label)`` rows in (split,
    index) order."""
    vi = VersionImage
    query = (
        select(vi.split, vi.index, vi.sha256, vi.label)
        .where(vi.version_id == version.id)
        .order_by(bytewise(vi.split), vi.index)
    )
    return driver_rows(session, query)


def version_stamp(session: Session, selection: Selection) -> tuple[str, str] | None:
    """``(name, content id)`` of the selection's version, None outside one (exports
    write them into their files and manifest)."""
    if selection.version is None:
        return None
    row = get_version(session, selection.version)
    return row.name, row.content_id
