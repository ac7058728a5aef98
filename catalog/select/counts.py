"""Counting a selection without visiting every image's decision state.

Most images have no decisions: their current label is the source's, they are
not excluded and carry no tags. So a count is the count the source's labels
give (read from the ``label_counts`` summary, or one scan of the label index when
the selection has other filters), corrected by the
few images that have decisions: take away what they contribute with the
source's labels, add what they contribute with their current state. Both
corrections read ``image_state`` alone (one row per decided image, which
repeats the image's place and source label), so they cost in proportion to the
decisions, not to the dataset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import Decision, ImageState
from catalog.db.models.exports import Export, ExportedFile
from catalog.db.models.images import Image
from catalog.db.models.label_counts import LabelCount
from catalog.errors import DatasetNotFoundError, SelectionError
from catalog.select.filters import (
    decision_filters,
    is_contiguous,
    label_column,
    resolve_labels,
    selection_query,
    with_state,
)
from catalog.selection import Selection

if TYPE_CHECKING:  # a count of plain filters starts without numpy
    import numpy as np
    import numpy.typing as npt


def count_left_out(session: Session, selection: Selection) -> int:
    """How many images the filters match that the selection leaves out as excluded."""
    if selection.excluded != "omit":
        return 0
    return count_selected(session, replace(selection, excluded="only"))


def count_images(
    session: Session,
    selection: Selection,
    by: Sequence[str] = (),
    *,
    ids: npt.NDArray[np.int64] | None = None,
) -> list[tuple[tuple[Any, ...], int]]:
    """Count the selected images, grouped by any of ``split``, ``label``.

    ``ids`` are the selection's ids when the caller drew them already. Returns
    ``[((group values...), count), ...]``, sorted by group.
    """
    for key in by:
        if key not in ("split", "label"):
            msg = f"Cannot count by {key!r}: expected split, label or split,label"
            raise SelectionError(msg)
    columns = [Image.split if key == "split" else label_column(selection) for key in by]
    if ids is None and is_contiguous(selection):
        return count_filtered(session, selection, by)
    from catalog.select.ids import id_chunks, select_ids  # a sample or a page: ids in numpy

    if ids is None:
        ids = select_ids(session, selection)
    counts: dict[tuple[Any, ...], int] = {}
    for chunk in id_chunks(ids):
        query = (
            with_state(select(*columns, func.count()))
            .where(Image.id.in_(chunk.tolist()))
            .group_by(*columns)
        )
        for row in session.execute(query):
            counts[tuple(row[:-1])] = counts.get(tuple(row[:-1]), 0) + int(row[-1])
    return sorted(counts.items(), key=group_order)


def group_order(item: tuple[tuple[Any, ...], int]) -> tuple[tuple[bool, Any], ...]:
    """Sort groups by their values, unlabeled (None) after every label."""
    return tuple((value is None, 0 if value is None else value) for value in item[0])


def count_selected(session: Session, selection: Selection) -> int:
    """How many images the selection holds (one COUNT for plain filters)."""
    counts = count_images(session, selection)
    return counts[0][1] if counts else 0


def count_filtered(
    session: Session, selection: Selection, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], int]]:
    """Count a selection without sampling or limits, grouped by ``split`` and/or
    ``label``; ``[((group values...), count), ...]`` sorted by group, empty groups left out."""
    if selection.where or selection.unlabeled:
        # Metadata and unlabeled filters are not mirrored in image_state: count
        # the whole joined selection in one grouped query instead.
        _, joined = selection_query(session, selection)
        label = label_column(selection)
        grouped = [Image.split if key == "split" else label for key in by]
        query = joined.with_only_columns(*grouped, func.count()).group_by(*grouped).order_by(None)
        found: list[Any] = list(session.execute(query))
        found = [(tuple(row[:-1]), int(row[-1])) for row in found if row[-1] > 0]
        return sorted(found, key=group_order)
    ds, query = count_statement(session, selection, by)
    counts: Counter[tuple[Any, ...]] = Counter()
    # An image without decisions passes unless the selection asks for a decision.
    if not (selection.tags or selection.relabelled or selection.excluded == "only"):
        rows: list[Any] = list(session.execute(query))
        counts.update({tuple(row[:-1]): int(row[-1]) for row in rows})
        counts.subtract(_decided(session, ds, selection, by, as_source=True))
    counts.update(_decided(session, ds, selection, by, as_source=False))
    return sorted(((group, n) for group, n in counts.items() if n > 0), key=group_order)


def count_statement(
    session: Session, selection: Selection, by: Sequence[str] = ()
) -> tuple[int, Any]:
    """The dataset's id and the one ``GROUP BY`` over the images' source labels that a
    count starts from.

    When the selection filters by dataset, split and label alone it reads the
    ``label_counts`` summary (a few rows per split, see :mod:`catalog.facts.label_counts`);
    otherwise an index, not the table (on SQLite the covering ``(dataset_id, split,
    label, idx)`` index). Tests check both plans on both backends.
    """
    ds, plain = selection_query(session, selection, "plain")  # also checks dataset and splits
    if reads_summary(selection):
        labels = resolve_labels(session, ds, selection.labels) if selection.labels else None
        return ds, summary_statement(ds, selection, labels, by)
    columns = [Image.split if key == "split" else Image.label for key in by]
    return ds, plain.with_only_columns(*columns, func.count()).group_by(*columns).order_by(None)


def _decided(
    session: Session, ds: int, selection: Selection, by: Sequence[str], *, as_source: bool
) -> dict[tuple[Any, ...], int]:
    """Counts over the decided images: as the source has them (no curation
    filters), or as the decisions leave them."""
    state = ImageState
    if as_source or selection.original_labels:
        label: Any = state.source_label
    else:
        label = func.coalesce(state.label, state.source_label)  # the current label
    columns = [state.split if key == "split" else label for key in by]
    query: Any = select(*columns, func.count()).where(state.dataset_id == ds)
    if selection.splits:
        query = query.where(state.split.in_(selection.splits))
    if selection.labels:
        query = query.where(label.in_(resolve_labels(session, ds, selection.labels)))
    if selection.index_range is not None:
        start, stop = selection.index_range
        query = query.where(state.index >= start, state.index < stop)
    if not as_source:
        query = decision_filters(query, selection, state.image_id)
    query = query.group_by(*columns)
    return {tuple(row[:-1]): int(row[-1]) for row in session.execute(query)}


def decisions_since(session: Session, export: Export) -> int:
    """Decisions recorded after ``export`` ran about images it holds or its selection
    matches today (excluded ones too): non-zero means the export is out of date.

    The images it holds are its recorded files' (one per image for a folder export):
    an image relabelled out of the selection is no longer matched, but its file,
    written under the old label, is now wrong. A container file (IDX, npz, a shard)
    records its first image only; for those, images the selection matches by their
    source labels count too.
    """
    whole = replace(
        Selection.from_json(export.selection), excluded="include", sample=None,
        per_label=None, per_group=None, holdout_part=None, limit=None, offset=0, order="index",
    )  # fmt: skip
    held: list[Any] = [select(ExportedFile.image_id).where(ExportedFile.export_id == export.id)]
    try:
        _, ids = selection_query(session, whole)
        held.append(ids.with_only_columns(Image.id).order_by(None))
        if export.output != "folder" and not whole.original_labels:
            _, source = selection_query(session, replace(whole, original_labels=True))
            held.append(source.with_only_columns(Image.id).order_by(None))
    except (SelectionError, DatasetNotFoundError):
        pass  # the dataset or split is gone: only the recorded files count
    after = Decision.id > (export.decision_id or 0)
    newer = select(func.count(Decision.id)).where(
        after, or_(*(Decision.image_id.in_(query) for query in held))
    )
    return int(session.scalar(newer) or 0)


def reads_summary(selection: Selection) -> bool:
    """Whether the selection's source-label count is the summary's: it filters by
    dataset, split and label alone (no index range, metadata or unlabeled filter)."""
    return selection.index_range is None and not selection.where and not selection.unlabeled


def summary_statement(
    dataset_id: int, selection: Selection, labels: Sequence[int] | None, by: Sequence[str]
) -> Any:
    """The grouped count over the summary: ``(group values..., n)`` rows, by any of
    ``split``, ``label``; ``labels`` are the resolved label filter (None: all)."""
    columns = [LabelCount.split if key == "split" else LabelCount.label for key in by]
    query = select(*columns, func.coalesce(func.sum(LabelCount.n), 0)).where(
        LabelCount.dataset_id == dataset_id
    )
    if selection.splits:
        query = query.where(LabelCount.split.in_(selection.splits))
    if labels is not None:
        query = query.where(LabelCount.label.in_(labels))
    return query.group_by(*columns)
