"""Selections: one SQL model of "which images" shared by query, count, export,
audit and the Python API.

Filters combine with AND and are compiled to SQL with bound parameters, so the
``(dataset, split, label)`` index does the work. Random samples are drawn by
numpy's PCG64 from the ids SQL selected, in ``(split, index)`` order, so the
same seed picks the same images in any process, on any machine and backend.

The filters themselves, and counts, are SQL alone in :mod:`catalog.filters` (no
numpy), re-exported here. The types answers come in, and the listings that need no selection (datasets,
exports), live in :mod:`catalog.records`; they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from catalog.blocks import block_of, stream_arrays, stream_rows
from catalog.db import Dataset, ExportedFile, Image
from catalog.filters import (
    CURRENT_LABEL,
    POSITION,
    count_images,
    count_left_out,
    count_selected,
    dataset_id,
    decision_filters,
    label_column,
    with_state,
)
from catalog.filters import is_contiguous as _is_contiguous_filter
from catalog.filters import selection_query as _filtered
from catalog.groups import group_values, per_group
from catalog.labelsets import LabelSet, label_set
from catalog.metadata import metadata_of
from catalog.models.decisions import ImageState, ImageTag
from catalog.query_family import holdout_part
from catalog.records import DatasetSummary, ImageRow, PixelBlock, list_datasets, list_exports

__all__ = [
    "CHUNK",
    "CURRENT_LABEL",
    "ORDERS",
    "POSITION",
    "DatasetSummary",
    "ImageRow",
    "PixelBlock",
    "Selection",
    "count_images",
    "count_left_out",
    "count_selected",
    "dataset_id",
    "decision_filters",
    "iter_pixel_blocks",
    "iter_rows",
    "label_column",
    "list_datasets",
    "list_exports",
    "load_arrays",
    "select_ids",
    "with_state",
]

# Selection lives in catalog.selection (no heavy imports); re-exported here, where it is compiled.
from catalog.selection import ORDERS as ORDERS  # noqa: PLC0414
from catalog.selection import Selection as Selection  # noqa: PLC0414
from catalog.sources import UNLABELED

AnySelect: TypeAlias = Select[*tuple[Any, ...]]

#: Rows fetched per round trip when streaming a selection.
CHUNK = 4096


def select_ids(session: Session, selection: Selection) -> npt.NDArray[np.int64]:
    """The ids of the selected images, in selection order.

    Filters run in SQL. Samples are drawn with ``numpy.random.Generator(PCG64(seed))``
    from the filtered ids in (split, index) order, so they are reproducible.
    """
    _, query = _filtered(session, selection)
    if not selection.is_random:
        if selection.limit is not None:
            query = query.limit(selection.limit)
        if selection.offset:
            query = query.offset(selection.offset)
        return np.fromiter(session.scalars(query.with_only_columns(Image.id)), dtype=np.int64)
    rows = session.connection().execute(query).all()
    ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
    labels = np.fromiter(
        (UNLABELED if row.label is None else row.label for row in rows),
        dtype=np.int64,
        count=len(rows),
    )
    if selection.holdout_part is not None:
        ids, labels = holdout_part(session, selection, ids, labels)
    rng = np.random.Generator(np.random.PCG64(selection.seed))
    if selection.sample is not None:
        picked = rng.permutation(len(ids))[: selection.sample]
    elif selection.per_group is not None:
        key = selection.group_by or ""
        picked = per_group(group_values(session, ids, key), selection.per_group, rng, key)
        if selection.order == "random":
            picked = rng.permutation(picked)
    elif selection.per_label is not None:
        order = rng.permutation(len(ids))
        parts = [
            order[labels[order] == label][: selection.per_label] for label in np.unique(labels)
        ]
        picked = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if selection.order == "random":
            picked = rng.permutation(picked)
    else:
        picked = rng.permutation(len(ids))
    if selection.order == "index":
        picked = np.sort(picked)
    stop = None if selection.limit is None else selection.offset + selection.limit
    return ids[picked][selection.offset : stop]


def _chunks(ids: npt.NDArray[np.int64], size: int = CHUNK) -> Iterator[npt.NDArray[np.int64]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def iter_rows(session: Session, selection: Selection) -> Iterator[ImageRow]:
    """Stream the selected images as rows (no pixels), with their exported paths."""
    ids = select_ids(session, selection)
    sets: dict[int, LabelSet] = {}
    for chunk in _chunks(ids):
        id_list = chunk.tolist()
        query = (
            with_state(
                select(
                    Dataset.name,
                    Image.dataset_id,
                    Image.id,
                    Image.split,
                    POSITION,
                    *_state_columns(selection),
                    Image.sha256,
                )
            )
            .join(Dataset, Dataset.id == Image.dataset_id)
            .where(Image.id.in_(id_list))
        )  # fmt: skip
        rows = {row.id: row for row in session.execute(query)}
        tags: dict[int, list[str]] = {}
        tag_query = select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(id_list))
        for image_id, tag in session.execute(tag_query.order_by(ImageTag.tag)):
            tags.setdefault(image_id, []).append(tag)
        meta = metadata_of(session, id_list)
        paths: dict[int, list[str]] = {}
        file_query = (
            select(ExportedFile.image_id, ExportedFile.path)
            .where(ExportedFile.image_id.in_(id_list))
            .order_by(ExportedFile.path)
        )
        for image_id, path in session.execute(file_query):
            paths.setdefault(image_id, []).append(path)
        for image_id in id_list:
            row = rows[image_id]
            if row.dataset_id not in sets:
                sets[row.dataset_id] = label_set(session, row.dataset_id)
            yield ImageRow(
                row.id, row.name, row.split, row.idx, row.label, row.sha256,
                tuple(paths.get(image_id, ())), row.original_label, bool(row.excluded),
                tuple(tags.get(image_id, ())), row.decision, sets[row.dataset_id].name(row.label),
                meta.get(image_id, {}),
            )  # fmt: skip


def iter_pixel_blocks(
    session: Session, selection: Selection, chunk: int = CHUNK
) -> Iterator[PixelBlock]:
    """Stream the selected images with pixels, ``chunk`` at a time, in selection order."""
    connection = session.connection()
    if _is_contiguous_filter(selection):
        # One streaming query: no id list, the index range scan does it all.
        _, query = _filtered(session, selection)
        for rows in stream_rows(
            connection, query.with_only_columns(*pixel_columns(selection)), chunk
        ):
            yield block_of(rows)
        return
    ids = select_ids(session, selection)
    for part in _chunks(ids, chunk):
        query = with_state(select(*pixel_columns(selection))).where(Image.id.in_(part.tolist()))
        by_id = {row[0]: row for rows in stream_rows(connection, query, chunk) for row in rows}
        yield block_of([by_id[i] for i in part.tolist()])


def _state_columns(selection: Selection) -> tuple[Any, ...]:
    """The label, the source's label, excluded and latest decision (state joined)."""
    return (
        label_column(selection).label("label"), Image.label.label("original_label"),
        ImageState.excluded, ImageState.decision_id.label("decision"),
    )  # fmt: skip


def pixel_columns(selection: Selection) -> tuple[Any, ...]:
    """The columns a :class:`PixelBlock` is made from (the decision state joined)."""
    return (
        Image.id, Image.dataset_id, Image.split, POSITION, *_state_columns(selection),
        Image.sha256, Image.height, Image.width, Image.pixels,
    )  # fmt: skip


def load_arrays(
    session: Session, selection: Selection
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """All selected pixels as one ``(N, H, W)`` uint8 array, and their int64 labels."""
    if _is_contiguous_filter(selection):
        # Only the columns the arrays hold: four per image instead of a block's twelve.
        _, query = _filtered(session, selection)
        columns = (label_column(selection), Image.height, Image.width, Image.pixels)
        return stream_arrays(session.connection(), query.with_only_columns(*columns), CHUNK)
    blocks = list(iter_pixel_blocks(session, selection))
    if not blocks:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return (
        np.concatenate([block.pixels for block in blocks]),
        np.concatenate([block.labels for block in blocks]),
    )
