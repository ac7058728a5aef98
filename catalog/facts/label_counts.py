"""The ``label_counts`` summary: kept by the store, read by counts.

:func:`refresh_label_counts` rewrites a dataset's rows for some splits from
``images`` (one ``INSERT ... SELECT ... GROUP BY``), at the end of an ingest and in
its transaction. :func:`summary_statement` is the grouped count
:mod:`catalog.select.counts` starts from when a selection filters by dataset, split and
label only; any other filter counts over the images' index instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.db.models.label_counts import LabelCount


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
