"""A selection within a version: the version's id in SQL, and the check that every image
it froze is still in the catalog with the same pixels.

:mod:`catalog.select.filters` joins a version's images by place and pixel digest
(:func:`version_key` names the version inside the statement) and calls
:func:`check_pinned` before any read, so a version whose image was replaced by
``ingest --replace`` is refused in one line naming the image, never read with other pixels.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image, Source
from catalog.db.models.versions import Version, VersionImage
from catalog.db.types import bytewise
from catalog.errors import VersionError
from catalog.selection import Selection

__all__ = ["check_pinned", "sources_key", "version_key"]

#: ``session.info`` key: the (version, dataset, splits, index range) checked already.
PINNED = "catalog_pinned"


def version_key(name: str) -> ColumnElement[int]:
    """The id of version ``name``, as a subquery run once per statement."""
    return select(Version.id).where(Version.name == name).scalar_subquery()


def sources_key(session: Session, dataset_id: int) -> str:
    """A digest of the dataset's source rows (id, content sha256, when ingested).

    Images change only by an ingest, which records its sources anew (``--replace``
    deletes a split's images and sources, and inserts both), so while this key is the
    one a version recorded, every image it froze is in place with its pixels.
    """
    rows = session.execute(
        select(Source.id, Source.sha256, Source.ingested_at)
        .where(Source.dataset_id == dataset_id)
        .order_by(Source.id)
    )
    text = "".join(f"{row.id}\t{row.sha256}\t{row.ingested_at.isoformat()}\n" for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def check_pinned(session: Session, selection: Selection, ds: int) -> None:
    """Refuse a version whose images (within the selection's split and index filters)
    are no longer in the catalog with the pixels it froze, naming the first.

    When the dataset's sources are those the version recorded (:func:`sources_key`),
    nothing was ingested since and the check is one small query; otherwise each image's
    place is looked up and its digest compared (which reads the image rows). Checked
    once per session (an export compiles its selection several times); the join itself
    also matches pixels by digest, so an image replaced after the check is left out,
    never read with other pixels.
    """
    assert selection.version is not None
    done: set[tuple[Any, ...]] = session.info.setdefault(PINNED, set())
    key = (selection.version, ds, selection.splits, selection.index_range)
    if key in done:
        return
    recorded = session.scalar(select(Version.sources_key).where(Version.name == selection.version))
    if recorded is not None and recorded == sources_key(session, ds):
        done.add(key)
        return
    vi = VersionImage
    query = (
        select(vi.split, vi.index, vi.sha256, Image.sha256.label("now"))
        .outerjoin(
            Image, and_(Image.dataset_id == ds, Image.split == vi.split, Image.index == vi.index)
        )
        .where(vi.version_id == version_key(selection.version))
        .where(or_(Image.id.is_(None), Image.sha256 != vi.sha256))
    )
    if selection.splits:
        query = query.where(vi.split.in_(selection.splits))
    if selection.index_range is not None:
        start, stop = selection.index_range
        query = query.where(vi.index >= start, vi.index < stop)
    changed = session.execute(query.order_by(bytewise(vi.split), vi.index).limit(1)).first()
    if changed is not None:
        where = f"{changed.split}/{changed.index}"
        found = "is gone" if changed.now is None else f"now has pixels {changed.now[:12]}"
        msg = (
            f"Version {selection.version!r} holds image {where} with pixels "
            f"{changed.sha256[:12]}, but the catalog's image {where} {found} "
            "(replaced by ingest --replace): the version cannot give its pixels back"
        )
        raise VersionError(msg)
    done.add(key)
