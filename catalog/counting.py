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
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db import Export, Image
from catalog.errors import DatasetNotFoundError, SelectionError
from catalog.filters import decision_filters, group_order, label_column
from catalog.filters import selection_query as _filtered
from catalog.label_counts import reads_summary, summary_statement
from catalog.models.decisions import ImageState
from catalog.query_family import resolve_labels
from catalog.selection import Selection


def count_filtered(
    session: Session, selection: Selection, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], int]]:
    """Count a selection without sampling or limits, grouped by ``split`` and/or
    ``label``; ``[((group values...), count), ...]`` sorted by group, empty groups left out."""
    if selection.where or selection.unlabeled:
        # Metadata and unlabeled filters are not mirrored in image_state: count
        # the whole joined selection in one grouped query instead.
        _, joined = _filtered(session, selection)
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
    ``label_counts`` summary (a few rows per split, see :mod:`catalog.label_counts`);
    otherwise an index, not the table (on SQLite the covering ``(dataset_id, split,
    label, idx)`` index). Tests check both plans on both backends.
    """
    ds, plain = _filtered(session, selection, "plain")  # also checks dataset and splits
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
    """Decisions recorded after ``export`` ran about images its selection matches
    (excluded ones too): non-zero means the export is out of date."""
    from catalog.models.decisions import Decision

    whole = replace(
        Selection.from_json(export.selection), excluded="include", sample=None,
        per_label=None, per_group=None, holdout_part=None, limit=None, offset=0, order="index",
    )  # fmt: skip
    try:
        _, ids = _filtered(session, whole)
    except (SelectionError, DatasetNotFoundError):
        return 0  # the dataset or split is gone
    newer = select(func.count(Decision.id)).where(
        Decision.id > (export.decision_id or 0),
        Decision.image_id.in_(ids.with_only_columns(Image.id).order_by(None)),
    )
    return int(session.scalar(newer) or 0)
