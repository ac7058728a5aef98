"""Selections: one SQL model of "which images" shared by query, count, export,
audit and the Python API.

Filters combine with AND and are compiled to SQL with bound parameters, so the
``(dataset, split, label)`` index does the work. Random samples are drawn by
numpy's PCG64 from the ids SQL selected, in ``(split, index)`` order, so the
same seed picks the same images in any process, on any machine and backend.

The types answers come in, and the listings that need no selection (datasets,
exports), live in :mod:`catalog.records`; they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from catalog.blocks import block_of, stream_arrays, stream_rows
from catalog.db import Dataset, ExportedFile, Image
from catalog.dbtypes import bytewise
from catalog.errors import DatasetNotFoundError, SelectionError
from catalog.groups import filter_metadata, group_values, per_group
from catalog.labelsets import LabelSet, label_set
from catalog.metadata import metadata_of
from catalog.models.decisions import ImageState, ImageTag
from catalog.query_family import holdout_part, resolve_labels
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
#: The index column, labelled so rows expose it as ``row.idx`` (``Row.index`` is
#: the tuple method).
POSITION = Image.index.label("idx")
#: The current label: the latest relabel decision, else the source's label. The
#: one place that knows it; every query that reads or filters labels outer-joins
#: ``image_state`` (see :func:`with_state`) and uses this expression.
CURRENT_LABEL: ColumnElement[int | None] = func.coalesce(ImageState.label, Image.label)


def dataset_id(session: Session, name: str | None) -> int:
    """The id of dataset ``name``; with None, of the only dataset in the catalog."""
    if name is None:
        rows = session.execute(select(Dataset.id, Dataset.name).limit(2)).all()
        if len(rows) == 1:
            return int(rows[0].id)
        if not rows:
            msg = "The catalog has no datasets yet: run `mnist-catalog ingest SOURCE` first"
            raise DatasetNotFoundError(msg)
        names = ", ".join(sorted(session.scalars(select(Dataset.name))))
        msg = f"The catalog has several datasets ({names}): pass --dataset NAME"
        raise SelectionError(msg)
    found = session.scalar(select(Dataset.id).where(Dataset.name == name))
    if found is None:
        names = ", ".join(sorted(session.scalars(select(Dataset.name)))) or "none"
        msg = f"No dataset named {name!r} in the catalog (datasets: {names})"
        raise DatasetNotFoundError(msg)
    return int(found)


def _filtered(session: Session, selection: Selection, part: str = "all") -> tuple[int, AnySelect]:
    """The id query for the filters that SQL applies (all but sampling).

    ``part="plain"`` ignores decisions: the source's labels, no curation
    filters, no join (see :mod:`catalog.counting`).
    """
    ds = dataset_id(session, selection.dataset)
    missing = [
        split
        for split in selection.splits
        if session.scalar(
            select(Image.id).where(Image.dataset_id == ds, Image.split == split).limit(1)
        )
        is None
    ]  # one index probe per split, not a scan of the dataset
    if missing:
        present = set(session.scalars(select(Image.split).where(Image.dataset_id == ds).distinct()))
        msg = (
            f"Unknown split {missing[0]!r} in dataset {selection.dataset or ''!r}: "
            f"expected one of {', '.join(sorted(present)) or 'none'}"
        ).replace(" in dataset ''", "")
        raise SelectionError(msg)
    plain = part == "plain"
    label = Image.label.expression if plain else label_column(selection)
    query: AnySelect = select(Image.id, label.label("label"))
    if not plain:
        query = with_state(query)
    query = query.where(Image.dataset_id == ds)
    if selection.splits:
        query = query.where(Image.split.in_(selection.splits))
    if selection.labels:
        query = query.where(label.in_(resolve_labels(session, ds, selection.labels)))
    if selection.unlabeled:
        query = query.where(label.is_(None))
    query = filter_metadata(query, selection.where)
    if not plain:
        query = decision_filters(query, selection)
    if selection.index_range is not None:
        start, stop = selection.index_range
        query = query.where(Image.index >= start, Image.index < stop)
    return ds, query.order_by(bytewise(Image.split), Image.index)


def label_column(selection: Selection) -> ColumnElement[int | None]:
    """The label ``selection`` filters and reports: the current one, or the source's."""
    return Image.label.expression if selection.original_labels else CURRENT_LABEL


def with_state(query: AnySelect) -> AnySelect:
    """``query`` with each image's decision state outer-joined (NULLs: no decisions)."""
    return query.join_from(Image, ImageState, ImageState.image_id == Image.id, isouter=True)


def decision_filters(query: AnySelect, selection: Selection, image_id: Any = Image.id) -> AnySelect:
    """The curation filters: exclusion, tags, relabelled (``query`` joins the state;
    ``image_id`` is the column naming the image)."""
    if selection.excluded == "omit":
        query = query.where(or_(ImageState.excluded.is_(None), ImageState.excluded.is_(False)))
    elif selection.excluded == "only":
        query = query.where(ImageState.excluded.is_(True))
    for tag in selection.tags:
        query = query.where(image_id.in_(select(ImageTag.image_id).where(ImageTag.tag == tag)))
    for tag in selection.without_tags:
        query = query.where(image_id.not_in(select(ImageTag.image_id).where(ImageTag.tag == tag)))
    if selection.relabelled:
        query = query.where(ImageState.label.is_not(None))
    return query


def count_left_out(session: Session, selection: Selection) -> int:
    """How many images the filters match that the selection leaves out as excluded."""
    if selection.excluded != "omit":
        return 0
    return count_selected(session, replace(selection, excluded="only"))


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


def count_images(
    session: Session, selection: Selection, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], int]]:
    """Count the selected images, grouped by any of ``split``, ``label``.

    Returns ``[((group values...), count), ...]``, sorted by group.
    """
    for key in by:
        if key not in ("split", "label"):
            msg = f"Cannot count by {key!r}: expected split, label or split,label"
            raise SelectionError(msg)
    columns = [Image.split if key == "split" else label_column(selection) for key in by]
    if _is_contiguous_filter(selection):
        from catalog.counting import count_filtered

        return count_filtered(session, selection, by)
    ids = select_ids(session, selection)
    counts: dict[tuple[Any, ...], int] = {}
    for chunk in _chunks(ids):
        query = (
            with_state(select(*columns, func.count()))
            .where(Image.id.in_(chunk.tolist()))
            .group_by(*columns)
        )
        for row in session.execute(query):
            counts[tuple(row[:-1])] = counts.get(tuple(row[:-1]), 0) + int(row[-1])
    return sorted(counts.items())


def count_selected(session: Session, selection: Selection) -> int:
    """How many images the selection holds (one COUNT for plain filters)."""
    counts = count_images(session, selection)
    return counts[0][1] if counts else 0


def _chunks(ids: npt.NDArray[np.int64], size: int = CHUNK) -> Iterator[npt.NDArray[np.int64]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _is_contiguous_filter(selection: Selection) -> bool:
    return not selection.is_random and selection.limit is None and not selection.offset


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
            connection, query.with_only_columns(*_pixel_columns(selection)), chunk
        ):
            yield block_of(rows)
        return
    ids = select_ids(session, selection)
    for part in _chunks(ids, chunk):
        query = with_state(select(*_pixel_columns(selection))).where(Image.id.in_(part.tolist()))
        by_id = {row[0]: row for rows in stream_rows(connection, query, chunk) for row in rows}
        yield block_of([by_id[i] for i in part.tolist()])


def _state_columns(selection: Selection) -> tuple[Any, ...]:
    """The label, the source's label, excluded and latest decision (state joined)."""
    return (
        label_column(selection).label("label"), Image.label.label("original_label"),
        ImageState.excluded, ImageState.decision_id.label("decision"),
    )  # fmt: skip


def _pixel_columns(selection: Selection) -> tuple[Any, ...]:
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
