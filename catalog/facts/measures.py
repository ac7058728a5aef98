"""Per-image measures kept in the catalog (``image_measures``), as numpy records.

A check that derives something from an image's pixels alone keeps it, one fixed-size
record per image and ``kind``, so a later run reads it back and computes it only for
the images that have none (those ingested since). Images never change their pixels, so
a kept record stays true; the kind names the method and its version.

:func:`read_measures` returns which of the given images have a record, and the records;
:func:`write_measures` keeps new ones, and says so, or returns False when the catalog
refuses the write (a read-only file, a role without INSERT, another audit that kept the
same images first): the caller then just goes on with what it computed.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.engine import write_if_allowed
from catalog.db.models.images import Image
from catalog.db.models.measures import ImageMeasure

#: Rows per INSERT batch.
CHUNK = 20_000


def read_measures(
    session: Session, kind: str, dataset: int, ids: npt.NDArray[np.int64], dtype: np.dtype[Any]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[Any]]:
    """Which of ``ids`` (images of ``dataset``) have a ``kind`` record, and those records
    (in the order of ``ids``)."""
    rows = (
        session.connection()
        .execute(
            select(ImageMeasure.image_id, ImageMeasure.value)
            .join(Image, Image.id == ImageMeasure.image_id)
            .where(Image.dataset_id == dataset, ImageMeasure.kind == kind)
            .order_by(ImageMeasure.image_id)
        )
        .all()
    )
    size = dtype.itemsize
    kept_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    values = [r[1] for r in rows]
    good = np.fromiter((len(v) == size for v in values), bool, len(values))
    kept_ids = kept_ids[good]
    records = np.frombuffer(b"".join(v for v, ok in zip(values, good, strict=True) if ok), dtype)
    if not len(kept_ids):
        return np.zeros(len(ids), bool), np.zeros(0, dtype)
    at = np.minimum(np.searchsorted(kept_ids, ids), len(kept_ids) - 1)
    found = kept_ids[at] == ids
    return found, records[at[found]]


def write_measures(
    session: Session, kind: str, ids: npt.NDArray[np.int64], records: npt.NDArray[Any]
) -> bool:
    """Keep ``records`` (one per image of ``ids``, none kept yet) and commit; False when
    the catalog refuses the write (nothing is kept then)."""
    if not len(ids):
        return True
    table = cast(Table, ImageMeasure.__table__)
    values = np.ascontiguousarray(records).view(np.uint8).reshape(len(ids), -1)

    def write() -> None:
        insert_rows = bulk_inserter(session.connection(), table, ("image_id", "kind", "value"))
        for start in range(0, len(ids), CHUNK):
            part = slice(start, start + CHUNK)
            insert_rows(
                [
                    (image_id, kind, row.tobytes())
                    for image_id, row in zip(ids[part].tolist(), values[part], strict=True)
                ]
            )

    kept, _ = write_if_allowed(session, write)
    return kept
