"""The ``label_counts`` summary: kept by the store, read by counts.

:func:`refresh_label_counts` rewrites a dataset's rows for some splits from
``images`` (one ``INSERT ... SELECT ... GROUP BY``), at the end of an ingest and in
its transaction. :func:`summary_statement` is the grouped count
:mod:`catalog.counting` starts from when a selection filters by dataset, split and
label only; any other filter counts over the images' index instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from catalog.db import Image
from catalog.models.label_counts import LabelCount
from catalog.selection import Selection


def refresh_label_counts(session: Session, dataset_id: int, splits: Sequence[str]) -> None:
    """Rewrite ``dataset_id``'s counts for ``splits`` from the images they hold now."""
    splits = list(splits)
    session.execute(
        delete(LabelCount).where(LabelCount.dataset_id == dataset_id, LabelCount.split.in_(splits))
    )
    grouped = (
        select(literal(dataset_id), Image.split, Image.label, func.count())
        .where(Image.dataset_id == dataset_id, Image.split.in_(splits))
        .group_by(Image.split, Image.label)
    )
    columns = ["dataset_id", "split", "label", "n"]
    session.execute(insert(LabelCount).from_select(columns, grouped))


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
