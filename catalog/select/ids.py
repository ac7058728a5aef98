"""Which images a selection holds, as an array of ids in selection order.

Filters run in SQL (:mod:`catalog.select.filters`). Random samples are drawn by
numpy's PCG64 from the ids SQL selected, in ``(split, index)`` order, so the same
seed picks the same images in any process, on any machine and backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.select.filters import is_contiguous, selection_query
from catalog.select.groups import group_values, holdout_part, per_group
from catalog.selection import Selection
from catalog.sources import UNLABELED

#: Ids per round trip when reading a selection's images.
CHUNK = 4096


def select_ids(session: Session, selection: Selection) -> npt.NDArray[np.int64]:
    """The ids of the selected images, in selection order.

    Filters run in SQL. Samples are drawn with ``numpy.random.Generator(PCG64(seed))``
    from the filtered ids in (split, index) order, so they are reproducible.
    """
    _, query = selection_query(session, selection)
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


def id_chunks(ids: npt.NDArray[np.int64], size: int = CHUNK) -> Iterator[npt.NDArray[np.int64]]:
    """``ids`` in consecutive slices of at most ``size``."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass(frozen=True)
class Chosen:
    """A selection whose ids were drawn once, for a job that counts, records and reads
    them (a sampled export): ``ids`` is None when the filters alone say which images,
    which a streaming scan reads without an id list."""

    selection: Selection
    ids: npt.NDArray[np.int64] | None

    def count(self) -> int | None:
        """How many images, when the ids are drawn (None: count the filters)."""
        return None if self.ids is None else len(self.ids)


def choose(session: Session, selection: Selection) -> Chosen:
    """Draw the ids of a sampled or paged ``selection`` once (plain filters: none)."""
    if is_contiguous(selection):
        return Chosen(selection, None)
    return Chosen(selection, select_ids(session, selection))
