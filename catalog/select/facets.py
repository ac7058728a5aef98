"""Facets: how a selection's images spread over split, label, tag, decision state and
each per-image metadata key, counted in SQL (what the grid shows beside its images).

Plain filter selections are counted by grouped queries over their filters; a sample
(or a page of one) is counted from its drawn ids, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageState, ImageTag
from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.facts.metadata import any_metadata
from catalog.select.counts import count_images, count_selected, state_filters, state_label
from catalog.select.filters import (
    dataset_id,
    decision_filters,
    is_contiguous,
    selection_query,
    with_state,
)
from catalog.select.ids import id_chunks, select_ids
from catalog.selection import Selection

#: Values listed per metadata key (the most frequent first); the rest are summed as "other".
VALUES_SHOWN = 25


@dataclass(frozen=True)
class Facets:
    """Counts of a selection's images by each facet: value -> images."""

    total: int
    split: dict[str, int] = field(default_factory=dict)
    label: dict[int | None, int] = field(default_factory=dict)
    tag: dict[str, int] = field(default_factory=dict)
    # relabelled, excluded (left out of the selection, counted apart), tagged, undecided
    state: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> value -> n
    more_values: dict[str, int] = field(default_factory=dict)  # key -> values not listed


def _id_queries(
    session: Session, selection: Selection, drawn: npt.NDArray[np.int64] | None
) -> Iterator[Any]:
    """Queries of the ids of the selection's images that have a decision (state
    joined), whole or a chunk at a time."""
    if is_contiguous(selection) and not (selection.where or selection.unlabeled):
        # Read from image_state alone, which repeats where each decided image is and
        # its source label (as counts do): no scan of the images.
        ds = dataset_id(session, selection.dataset)
        label = state_label(selection)
        query = state_filters(select(ImageState.image_id), session, ds, selection, label)
        yield decision_filters(query, selection, ImageState.image_id)
        return
    if is_contiguous(selection):
        _, query = selection_query(session, selection)
        yield query.with_only_columns(Image.id).where(ImageState.image_id.is_not(None))
        return
    assert drawn is not None
    for chunk in id_chunks(drawn):
        yield (
            with_state(select(Image.id))
            .where(Image.id.in_(chunk.tolist()))
            .where(ImageState.image_id.is_not(None))
        )


def _all_ids(
    session: Session, selection: Selection, drawn: npt.NDArray[np.int64] | None
) -> Iterator[Any]:
    """Queries of the ids of all the selection's images (for metadata), whole or chunked."""
    if is_contiguous(selection):
        _, query = selection_query(session, selection)
        yield query.with_only_columns(Image.id).order_by(None)
        return
    assert drawn is not None
    for chunk in id_chunks(drawn):
        yield select(Image.id).where(Image.id.in_(chunk.tolist()))


def count_facets(session: Session, selection: Selection) -> Facets:
    """The :class:`Facets` of ``selection`` (its offset and limit apply)."""
    # A sample (or a page of one) is drawn once and counted from its ids.
    drawn = None if is_contiguous(selection) else select_ids(session, selection)
    splits = {str(k[0]): n for k, n in count_images(session, selection, ("split",), ids=drawn)}
    labels = {k[0]: n for k, n in count_images(session, selection, ("label",), ids=drawn)}
    total = sum(splits.values())
    tags: dict[str, int] = {}
    decided = relabelled = tagged = excluded = 0
    meta: dict[tuple[str, str], int] = {}
    for ids in _id_queries(session, selection, drawn):
        picked = ids.order_by(None).subquery()
        state = session.execute(
            select(
                func.count(),
                func.count(ImageState.label),
                func.count(case((ImageState.excluded.is_(True), 1))),
            ).join(picked, picked.c[0] == ImageState.image_id)
        ).one()
        decided += int(state[0])
        relabelled += int(state[1])
        excluded += int(state[2])  # excluded images the selection keeps (include, only)
        in_picked = ImageTag.image_id.in_(select(picked.c[0]))
        tag_query = select(ImageTag.tag, func.count()).where(in_picked).group_by(ImageTag.tag)
        for tag, n in session.execute(tag_query):
            tags[tag] = tags.get(tag, 0) + int(n)
        tagged += int(
            session.scalar(select(func.count(distinct(ImageTag.image_id))).where(in_picked)) or 0
        )
    if any_metadata(session):
        for ids in _all_ids(session, selection, drawn):
            meta_query = (
                select(ImageMetadata.key, ImageMetadata.value, func.count())
                .where(ImageMetadata.image_id.in_(ids))
                .group_by(ImageMetadata.key, ImageMetadata.value)
            )
            for key, value, n in session.execute(meta_query):
                meta[(key, value)] = meta.get((key, value), 0) + int(n)
    # A sample leaves none out; a version holds its images whatever was decided since.
    if selection.excluded == "omit" and drawn is None and selection.version is None:
        excluded += count_selected(session, replace(selection, excluded="only"))
    state_counts = {
        "relabelled": relabelled, "excluded": excluded, "tagged": tagged,
        "undecided": total - decided,
    }  # fmt: skip
    metadata: dict[str, dict[str, int]] = {}
    more: dict[str, int] = {}
    for key in sorted({key for key, _ in meta}):
        values = sorted(((v, n) for (k, v), n in meta.items() if k == key), key=lambda p: -p[1])
        metadata[key] = dict(values[:VALUES_SHOWN])
        if len(values) > VALUES_SHOWN:
            more[key] = len(values) - VALUES_SHOWN
    return Facets(total, splits, labels, dict(sorted(tags.items())), state_counts, metadata, more)


def keep_selected(session: Session, selection: Selection, ids: Sequence[int]) -> list[int]:
    """Those of ``ids`` (a few, e.g. an audit's suspects) that ``selection`` holds, in
    their order: the selection's filters on an ``IN`` list of them, not a read of all
    its ids (a sample is drawn whole, then looked up)."""
    if not is_contiguous(selection):
        drawn = select_ids(session, selection)
        return [int(i) for i in np.asarray(ids)[np.isin(ids, drawn)].tolist()]
    _, query = selection_query(session, selection)
    found: set[int] = set()
    for chunk in id_chunks(np.asarray(ids, dtype=np.int64)):
        found.update(
            session.scalars(
                query.with_only_columns(Image.id).where(Image.id.in_(chunk.tolist())).order_by(None)
            )
        )
    return [i for i in ids if i in found]
