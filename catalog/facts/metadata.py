"""Per-image metadata: attributes some sources carry (QMNIST's writer, HSF series,
NIST index; a CSV's extra columns), stored as (image, key, value) rows.

Values are text; integers are stored in their decimal form, so ``writer=123``
matches what QMNIST's int32 column held. Selections filter on one key
(``--where writer=123``) and group by one (``--group-by writer``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.errors import SelectionError

if TYPE_CHECKING:  # filters name metadata keys without loading the readers (numpy)
    from catalog.sources import Batch

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def check_key(key: str, where: str) -> str:
    """``key`` if it is a usable metadata key, else a SelectionError."""
    if not KEY.fullmatch(key):
        msg = f"Invalid metadata key {key!r} in {where}: expected letters, digits, '_', '.', '-'"
        raise SelectionError(msg)
    return key


def insert_metadata(session: Session, dataset_id: int, batch: Batch) -> int:
    """Store ``batch.meta`` for the batch's images (already inserted); return rows written."""
    indices = batch.indices.tolist()
    query = select(Image.index, Image.id).where(
        Image.dataset_id == dataset_id,
        Image.split == batch.split,
        Image.index >= min(indices),
        Image.index <= max(indices),
    )
    ids: dict[int, int] = dict(session.execute(query).all())
    table = cast(Table, ImageMetadata.__table__)
    insert_rows = bulk_inserter(session.connection(), table, ("image_id", "key", "value"))
    rows: list[tuple[Any, ...]] = []
    for key, values in batch.meta.items():
        check_key(key, f"split {batch.split}")
        for index, value in zip(indices, values.tolist(), strict=True):
            if value is None or value == "":
                continue
            rows.append((ids[index], key, str(value)))
    if rows:
        insert_rows(rows)
    return len(rows)


def metadata_of(session: Session, image_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """The metadata of some images: image id -> {key: value}."""
    found: dict[int, dict[str, str]] = {}
    if not image_ids:
        return found
    low, high = min(image_ids), max(image_ids)
    in_range = ImageMetadata.image_id.between(low, high)
    # One primary-key probe first: most datasets have no metadata, and asking for
    # thousands of ids costs more than the answer.
    if session.scalar(select(ImageMetadata.image_id).where(in_range).limit(1)) is None:
        return found
    dense = high - low + 1 <= 2 * len(image_ids)  # ids fill their range: scan it, no IN list
    wanted = set(image_ids)
    query = select(ImageMetadata.image_id, ImageMetadata.key, ImageMetadata.value).where(
        in_range if dense else ImageMetadata.image_id.in_(wanted)
    )
    for image_id, key, value in session.execute(query):
        if image_id in wanted:
            found.setdefault(image_id, {})[key] = value
    return found


def any_metadata(session: Session) -> bool:
    """Whether any image in the catalog has metadata (one primary-key probe).

    Most catalogs hold only sources without per-image metadata (MNIST, Fashion,
    KMNIST): callers that would otherwise probe for each block of images ask this
    once. (A per-dataset answer would need the images' ids by dataset, which no
    index gives cheaply: a min/max of a million ids is a scan of them.)
    """
    return session.scalar(select(ImageMetadata.image_id).limit(1)) is not None


def metadata_keys(session: Session, dataset_id: int) -> list[str]:
    """The metadata keys any image of a dataset has."""
    query = (
        select(ImageMetadata.key)
        .join(Image, Image.id == ImageMetadata.image_id)
        .where(Image.dataset_id == dataset_id)
        .distinct()
        .order_by(ImageMetadata.key)
    )
    return list(session.scalars(query))
