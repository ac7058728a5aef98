"""Keep an identity result per image, as metadata rows (see :mod:`catalog.facts.metadata`).

Every image of the identified dataset gets ``match`` (exact, lossy or none);
matched ones also ``canonical_dataset``, ``canonical_split`` and
``canonical_index``, and lossy ones ``max_error`` (levels) where it was measured
on pixels. Storing a
result first deletes these keys for the whole dataset, so re-running identify
(against the same or another reference) replaces the previous answer and leaves
other metadata (a writer, a CSV column) alone.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.identity import result as res

#: The metadata keys identify writes, and replaces on each run.
IDENTITY_KEYS = ("match", "canonical_dataset", "canonical_split", "canonical_index", "max_error")
#: Rows per INSERT batch.
CHUNK = 20_000


def store_identity(session: Session, result: res.IdentityResult) -> int:
    """Replace the identify metadata of ``result``'s dataset with ``result``; return rows written."""
    image_ids = result.image_ids
    if not len(image_ids):
        return 0
    dataset = session.scalar(select(Image.dataset_id).where(Image.id == int(image_ids[0])))
    of_dataset = select(Image.id).where(Image.dataset_id == dataset)
    session.execute(
        delete(ImageMetadata)
        .where(ImageMetadata.key.in_(IDENTITY_KEYS), ImageMetadata.image_id.in_(of_dataset))
        .execution_options(synchronize_session=False)
    )
    table = cast(Table, ImageMetadata.__table__)
    insert_rows = bulk_inserter(session.connection(), table, ("image_id", "key", "value"))
    written = 0
    for start in range(0, len(image_ids), CHUNK):
        rows = _rows(result, slice(start, start + CHUNK))
        insert_rows(rows)
        written += len(rows)
    return written


def _rows(r: res.IdentityResult, part: slice) -> list[tuple[Any, ...]]:
    """The (image_id, key, value) rows of one slice of a result, built a key at a time."""
    ids = r.image_ids[part]
    matched = r.kinds[part] != res.NONE
    errors = r.max_errors[part]
    measured = (r.kinds[part] == res.LOSSY) & ~np.isnan(errors)  # exact: 0 by definition
    columns = [
        (ids, "match", np.asarray(res.KINDS)[r.kinds[part]]),
        (ids[matched], "canonical_dataset", np.full(int(matched.sum()), r.reference)),
        (ids[matched], "canonical_split", r.canonical_splits[part][matched]),
        (ids[matched], "canonical_index", r.canonical_indices[part][matched].astype(np.str_)),
        (ids[measured], "max_error", np.char.mod("%.1f", errors[measured].astype(np.float64))),
    ]
    rows: list[tuple[Any, ...]] = []
    for image_ids, key, values in columns:
        rows += zip(image_ids.tolist(), [key] * len(image_ids), values.tolist(), strict=True)
    return rows
