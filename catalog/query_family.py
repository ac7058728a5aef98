"""The parts of a selection that the MNIST family added: labels by number or
class name, unlabeled images, metadata filters, N per group and group-disjoint
holdouts. :mod:`catalog.query` calls these; they know the label set and the
metadata table, nothing about output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from catalog.groups import group_values, holdout_mask
from catalog.labelsets import LabelSet, label_set

if TYPE_CHECKING:  # a count resolves labels without numpy
    import numpy as np
    import numpy.typing as npt

    from catalog.query import Selection


def resolve_labels(session: Session, dataset_id: int, labels: tuple[int | str, ...]) -> list[int]:
    """Label numbers for numbers or class names, checked against the dataset's set."""
    labels_of = label_set(session, dataset_id)
    return [labels_of.parse(str(label)) for label in labels]


def holdout_part(
    session: Session,
    selection: Selection,
    ids: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Keep the ids of the selection's holdout part (``train``: the rest, ``val``: held out)."""
    key = selection.holdout_by or ""
    values = group_values(session, ids, key)
    held = holdout_mask(values, selection.holdout or 0.0, selection.seed, key)
    keep = held if selection.holdout_part == "val" else ~held
    return ids[keep], labels[keep]


def count_by_label(
    counts: Sequence[Any], labels_of: LabelSet
) -> tuple[dict[str, int], dict[str, list[int]], dict[str, int]]:
    """(split, label, n) rows to images per split, per-label lists in the set's
    order (a label outside the set is added), and unlabeled images per split."""
    numbers = list(labels_of.numbers)
    extra = sorted({label for _, label, _ in counts if label is not None} - set(numbers))
    numbers += extra
    position = {number: i for i, number in enumerate(numbers)}
    splits: dict[str, int] = {}
    per_label: dict[str, list[int]] = {}
    unlabeled: dict[str, int] = {}
    for split, label, n in counts:
        splits[split] = splits.get(split, 0) + n
        row = per_label.setdefault(split, [0] * len(numbers))
        if label is None:
            unlabeled[split] = n
        else:
            row[position[label]] = n
    return splits, per_label, unlabeled
