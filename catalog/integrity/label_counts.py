"""The ``label_counts`` summary against the images it counts.

A count by dataset, split and label reads the summary (:mod:`catalog.facts.label_counts`),
which the store rewrites in each ingest's transaction; this check counts the images
themselves (one ``GROUP BY`` over the label index) and names every summary row that
differs, and every group of images the summary lacks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.db.models.label_counts import LabelCount
from catalog.integrity.report import Found, Progress, dataset_names

Key = tuple[int, str, int | None]  # dataset id, split, source label (None: unlabeled)


def run(session: Session, found: Found, progress: Progress | None) -> int:
    """Check every summary row; returns how many there are."""
    names = dataset_names(session)
    counted = select(Image.dataset_id, Image.split, Image.label, func.count()).group_by(
        Image.dataset_id, Image.split, Image.label
    )
    images: dict[Key, int] = {(ds, split, label): int(n) for ds, split, label, n in
                              session.execute(counted)}  # fmt: skip
    summary: dict[Key, int] = {}
    rows = 0
    kept = select(LabelCount.dataset_id, LabelCount.split, LabelCount.label, LabelCount.n)
    for ds, split, label, n in session.execute(kept):
        summary[ds, split, label] = summary.get((ds, split, label), 0) + int(n)
        rows += 1
    for key in sorted(images.keys() | summary.keys(), key=_order):
        held, said = images.get(key, 0), summary.get(key, 0)
        if held != said:
            ds, split, label = key
            what = "unlabeled" if label is None else f"label {label}"
            row = f"{names.get(ds, f'dataset #{ds}')} {split} {what}"
            found.add("label-counts", row, f"is counted {said:,} in label_counts; "
                      f"the images hold {held:,}")  # fmt: skip
    return rows


def _order(key: Key) -> tuple[Any, ...]:
    ds, split, label = key
    return ds, split, label is None, label or 0
