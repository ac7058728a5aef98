"""Pixels of images by id, in blocks: what a check reads when it needs some images, not all."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db import Image
from catalog.errors import ImageNotFoundError, SelectionError

__all__ = ["CHUNK", "pixels_of"]

CHUNK = 4096
"""Ids read per query."""


def _chunks(ids: npt.NDArray[np.int64], size: int = CHUNK) -> Iterator[npt.NDArray[np.int64]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def pixels_of(session: Session, image_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """The pixels of ``image_ids`` (any order, repeats allowed) as one ``(n, H, W)`` array.

    Ids are read sorted, :data:`CHUNK` at a time; a chunk whose ids fill most of their
    range is read as one range scan of the primary key instead of a long ``IN`` list.

    Raises
    ------
    ImageNotFoundError
        If an id is not an image of the catalog.
    SelectionError
        If the images have different sizes.
    """
    wanted = np.asarray(image_ids, dtype=np.int64)
    unique, inverse = np.unique(wanted, return_inverse=True)
    blobs: list[bytes] = []
    found: list[int] = []
    shapes: set[tuple[int, int]] = set()
    columns = (Image.id, Image.height, Image.width, Image.pixels)
    for part in _chunks(unique):
        low, high = int(part[0]), int(part[-1])
        if high - low + 1 <= 2 * len(part):
            where = Image.id.between(low, high)
        else:
            where = Image.id.in_(part.tolist())
        statement = select(*columns).where(where).order_by(Image.id)
        keep = set(part.tolist())
        for row in session.connection().execute(statement):
            if row[0] in keep:
                found.append(row[0])
                shapes.add((row[1], row[2]))
                blobs.append(row[3])
    if len(found) != len(unique):
        missing = np.setdiff1d(unique, np.asarray(found, np.int64))
        msg = f"No image with id {int(missing[0])} in the catalog"
        raise ImageNotFoundError(msg)
    if len(shapes) > 1:
        msg = f"Images have different sizes {sorted(shapes)}: read one size at a time"
        raise SelectionError(msg)
    height, width = shapes.pop() if shapes else (0, 0)
    flat = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(unique), height, width)
    return flat[inverse.reshape(-1)]
