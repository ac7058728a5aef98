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
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from catalog.curation.decisions import default_author
from catalog.curation.log import latest_decision
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
from catalog.selection import Selection
from catalog.versions.content import check_version_name, content_id

IMAGE_COLUMNS = ("version_id", "split", "idx", "image_id", "sha256", "label", "decision_id")


@dataclass(frozen=True, slots=True)
class FrozenImage:
    """One image of a version: where it is, its pixels' digest, its label then."""

    split: str
    index: int
    sha256: str
    label: int | None
    image_id: int
    decision_id: int | None


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


def selected_images(session: Session, selection: Selection) -> list[FrozenImage]:
    """The selection's images as a version freezes them, in (split, index) order."""
    columns = (
        Image.split, Image.index, Image.sha256, label_column(selection), Image.id,
        state_columns(selection)[3],
    )  # fmt: skip
    if is_contiguous(selection):
        _, query = selection_query(session, selection)
        rows = session.execute(query.with_only_columns(*columns))
        return [FrozenImage(*row) for row in rows]
    found: list[FrozenImage] = []
    for chunk in id_chunks(select_ids(session, selection)):
        query = with_state(select(*columns), selection).where(Image.id.in_(chunk.tolist()))
        found += [FrozenImage(*row) for row in session.execute(query)]
    found.sort(key=lambda image: (image.split.encode(), image.index))
    return found


def check_free(session: Session, name: str) -> None:
    """Refuse a bad name, or one a version already has (versions are never edited)."""
    check_version_name(name)
    if session.scalar(select(Version.id).where(Version.name == name)) is not None:
        msg = f"Version {name!r} already exists: versions are never edited, pick a new name"
        raise VersionError(msg)


def store_version(session: Session, version: Version, images: Sequence[FrozenImage]) -> VersionInfo:
    """Write ``version`` and its images (one bulk insert)."""
    version.count = len(images)
    version.splits = dict(sorted(Counter(image.split for image in images).items()))
    session.add(version)
    session.flush()
    insert = bulk_inserter(session.connection(), cast(Table, VersionImage.__table__), IMAGE_COLUMNS)
    vid = version.id
    for start in range(0, len(images), 50_000):
        insert([
            (vid, i.split, i.index, i.image_id, i.sha256, i.label, i.decision_id)
            for i in images[start : start + 50_000]
        ])  # fmt: skip
    return info_of(version)


def freeze_version(
    session: Session,
    selection: Selection,
    name: str,
    *,
    note: str | None = None,
    author: str | None = None,
) -> VersionInfo:
    """Freeze the selection's images, with their labels now, as version ``name``.

    Raises
    ------
    VersionError
        If ``name`` is bad or taken, or the selection holds no images.
    """
    check_free(session, name)
    ds, _ = selection_query(session, selection)  # checks the dataset and splits first
    images = selected_images(session, selection)
    if not images:
        msg = f"The selection holds no images: version {name!r} would be empty"
        raise VersionError(msg)
    dataset = session.get(Dataset, ds)
    assert dataset is not None
    labels = label_set(session, ds)
    used = sorted({image.label for image in images if image.label is not None})
    version = Version(
        name=name, dataset_id=ds, dataset=dataset.name,
        content_id=content_id(dataset.name, [(i.split, i.index, i.sha256, i.label) for i in images]),
        label_names={str(n): labels.name(n) for n in used}, selection=selection.to_json(),
        decision_id=latest_decision(session), note=note, author=author or default_author(),
        imported=False,
    )  # fmt: skip
    return store_version(session, version, images)


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


def version_images(session: Session, version: Version) -> list[FrozenImage]:
    """The images ``version`` froze, in (split, index) order."""
    vi = VersionImage
    query = (
        select(vi.split, vi.index, vi.sha256, vi.label, vi.image_id, vi.decision_id)
        .where(vi.version_id == version.id)
        .order_by(bytewise(vi.split), vi.index)
    )
    return [FrozenImage(*row) for row in session.execute(query)]


def version_stamp(session: Session, selection: Selection) -> tuple[str, str] | None:
    """``(name, content id)`` of the selection's version, None outside one (exports
    write them into their files and manifest)."""
    if selection.version is None:
        return None
    row = get_version(session, selection.version)
    return row.name, row.content_id
