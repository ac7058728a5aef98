"""Images by place or by id, with their pixels and current labels: what the
image page, the dataset object and the Python API look up one at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.blocks import block_of
from catalog.db import Dataset, Image
from catalog.errors import ImageNotFoundError
from catalog.labelsets import label_set
from catalog.metadata import metadata_of
from catalog.models.decisions import ImageTag
from catalog.query import dataset_id, pixel_columns, with_state
from catalog.records import ImageRow, PixelBlock
from catalog.selection import Selection


def get_image(
    session: Session, dataset: str | None, split: str, index: int
) -> tuple[ImageRow, npt.NDArray[np.uint8]]:
    """One image by its split and index, with its pixels."""
    ds = dataset_id(session, dataset)
    row = session.execute(
        with_state(select(Dataset.name, *pixel_columns(Selection())))
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.dataset_id == ds, Image.split == split, Image.index == index)
    ).one_or_none()
    if row is None:
        name = session.scalar(select(Dataset.name).where(Dataset.id == ds))
        msg = f"No image {split}:{index} in dataset {name}"
        raise ImageNotFoundError(msg)
    pixels = np.frombuffer(row.pixels, dtype=np.uint8).reshape(row.height, row.width)
    tags = session.scalars(
        select(ImageTag.tag).where(ImageTag.image_id == row.id).order_by(ImageTag.tag)
    )
    image = ImageRow(
        row.id, row.name, row.split, row.idx, row.label, row.sha256, (), row.original_label,
        bool(row.excluded), tuple(tags), row.decision, label_set(session, ds).name(row.label),
        metadata_of(session, [row.id]).get(row.id, {}),
    )  # fmt: skip
    return image, pixels


def load_by_ids(session: Session, ids: Sequence[int]) -> PixelBlock:
    """The images with these ids, with pixels and current labels, in the order
    given (ids may repeat)."""
    wanted = list(ids)
    query = with_state(select(*pixel_columns(Selection()))).where(Image.id.in_(set(wanted)))
    by_id = {row.id: row for row in session.connection().execute(query)}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        msg = f"No image with id {missing[0]} in the catalog: was its dataset replaced?"
        raise ImageNotFoundError(msg)
    return block_of([by_id[i] for i in wanted])
