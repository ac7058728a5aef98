"""The parts of a selection that the MNIST family added: labels by number or
class name, unlabeled images, metadata filters, N per group and group-disjoint
holdouts. :mod:`catalog.query` calls these; they know the label set and the
metadata table, nothing about output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.errors import SelectionError
from catalog.groups import PARTS, group_values, holdout_mask
from catalog.labelsets import LabelSet, label_set
from catalog.metadata import check_key

if TYPE_CHECKING:
    from catalog.query import Selection


def check_family_fields(selection: Selection) -> None:
    """Check what can be checked without the catalog (the rest of __post_init__)."""
    bad = [label for label in selection.labels if isinstance(label, int) and label < 0]
    if bad:
        msg = f"Label {bad[0]} is negative: labels are numbers 0 and up, or class names"
        raise SelectionError(msg)
    if selection.index_range is not None:
        start, stop = selection.index_range
        if start < 0 or stop < start:
            msg = f"Index range {start}:{stop} is not a half-open range A:B with 0 <= A <= B"
            raise SelectionError(msg)
    for name in ("sample", "per_label", "per_group", "limit"):
        value = getattr(selection, name)
        if value is not None and value < 0:
            msg = f"--{name.replace('_', '-')} must be 0 or more, got {value}"
            raise SelectionError(msg)
    if selection.offset < 0:
        msg = f"--offset must be 0 or more, got {selection.offset}"
        raise SelectionError(msg)
    samplers = [
        f"--{n.replace('_', '-')}"
        for n in ("sample", "per_label", "per_group")
        if getattr(selection, n) is not None
    ]
    if len(samplers) > 1:
        msg = f"{' and '.join(samplers)} cannot be combined"
        raise SelectionError(msg)
    if (selection.per_group is None) != (selection.group_by is None):
        msg = "--per-group N and --group-by KEY go together"
        raise SelectionError(msg)
    if selection.group_by is not None:
        check_key(selection.group_by, "--group-by")
    if selection.unlabeled and selection.labels:
        msg = "--unlabeled and --label cannot be combined: unlabeled images have no label"
        raise SelectionError(msg)
    holdout = (selection.holdout_by, selection.holdout, selection.holdout_part)
    if any(v is not None for v in holdout) and any(v is None for v in holdout):
        msg = "--holdout-by KEY and --holdout FRACTION go together"
        raise SelectionError(msg)
    if selection.holdout_part is not None and selection.holdout_part not in PARTS:
        msg = f"Holdout part {selection.holdout_part!r}: expected train or val"
        raise SelectionError(msg)
    from catalog.query import ORDERS

    if selection.order not in ORDERS:
        msg = f"Unknown order {selection.order!r}: expected one of {', '.join(ORDERS)}"
        raise SelectionError(msg)


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
