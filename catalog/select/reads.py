"""Pixels out of the catalog: a selection's images in blocks or as one array, and
images by id.

Every consumer of pixels (exports, ``.arrays()``, the dataset object, contact
sheets, audit checks) reads them through here; :mod:`catalog.select.blocks` turns
rows into numpy blocks with as little per-row Python work as it can.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.errors import ImageNotFoundError, SelectionError
from catalog.select.blocks import block_of, stream_arrays, stream_rows
from catalog.select.filters import (
    POSITION,
    is_contiguous,
    label_column,
    selection_query,
    state_columns,
    with_state,
)
from catalog.select.ids import CHUNK, id_chunks, select_ids
from catalog.select.records import PixelBlock
from catalog.selection import Selection


def iter_pixel_blocks(
    session: Session,
    selection: Selection,
    chunk: int = CHUNK,
    *,
    ids: npt.NDArray[np.int64] | None = None,
) -> Iterator[PixelBlock]:
    """Stream the selected images with pixels, ``chunk`` at a time, in selection order.

    ``ids`` are the selection's ids when the caller drew them already (a sampled
    export draws them once, :func:`catalog.select.ids.choose`)."""
    connection = session.connection()
    if ids is None and is_contiguous(selection):
        # One streaming query: no id list, the index range scan does it all.
        _, query = selection_query(session, selection)
        for rows in stream_rows(
            connection, query.with_only_columns(*pixel_columns(selection)), chunk
        ):
            yield block_of(rows)
        return
    if ids is None:
        ids = select_ids(session, selection)
    for part in id_chunks(ids, chunk):
        query = with_state(select(*pixel_columns(selection)), selection).where(
            Image.id.in_(part.tolist())
        )
        by_id = {row[0]: row for rows in stream_rows(connection, query, chunk) for row in rows}
        yield block_of([by_id[i] for i in part.tolist()])


def pixel_columns(selection: Selection) -> tuple[Any, ...]:
    """The columns a :class:`PixelBlock` is made from (the decision state joined)."""
    return (
        Image.id, Image.dataset_id, Image.split, POSITION, *state_columns(selection),
        Image.sha256, Image.height, Image.width, Image.pixels,
    )  # fmt: skip


def load_arrays(
    session: Session, selection: Selection
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """All selected pixels as one ``(N, H, W)`` uint8 array, and their int64 labels."""
    if is_contiguous(selection):
        # Only the columns the arrays hold: four per image instead of a block's twelve.
        _, query = selection_query(session, selection)
        columns = (label_column(selection), Image.height, Image.width, Image.pixels)
        return stream_arrays(session.connection(), query.with_only_columns(*columns), CHUNK)
    blocks = list(iter_pixel_blocks(session, selection))
    if not blocks:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return (
        np.concatenate([block.pixels for block in blocks]),
        np.concatenate([block.labels for block in blocks]),
    )


def load_by_ids(
    session: Session, ids: Sequence[int], within: Selection | None = None
) -> PixelBlock:
    """The images with these ids, with pixels and current labels (those of ``within``'s
    version, if it names one), in the order given (ids may repeat)."""
    wanted = list(ids)
    within = within or Selection()
    query = with_state(select(*pixel_columns(within)), within).where(Image.id.in_(set(wanted)))
    by_id = {row.id: row for row in session.connection().execute(query)}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        msg = f"No image with id {missing[0]} in the catalog: was its dataset replaced?"
        raise ImageNotFoundError(msg)
    return block_of([by_id[i] for i in wanted])


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
    for part in id_chunks(unique):
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
