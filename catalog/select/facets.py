"""Facets: how a selection's images spread over split, label, tag, decision state and
each per-image metadata key, counted in SQL (what the grid shows beside its images).

Plain filter selections are counted by grouped queries over their filters; a sample
(or a page of one) is counted from its drawn ids, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageState, ImageTag
from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.facts.metadata import any_metadata
from catalog.select.counts import count_images, count_selected
from catalog.select.filters import is_contiguous, selection_query, with_state
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


def _id_queries(session: Session, selection: Selection) -> Iterator[Any]:
    """Queries of the selection's image ids (state joined), whole or a chunk at a time."""
    if is_contiguous(selection):
        _, query = selection_query(session, selection)
        yield query.with_only_columns(Image.id).order_by(None)
        return
    for chunk in id_chunks(select_ids(session, selection)):
        yield with_state(select(Image.id)).where(Image.id.in_(chunk.tolist()))


def count_facets(session: Session, selection: Selection) -> Facets:
    """The :class:`Facets` of ``selection`` (its offset and limit apply)."""
    splits = {str(k[0]): n for k, n in count_images(session, selection, ("split",))}
    labels = {k[0]: n for k, n in count_images(session, selection, ("label",))}
    total = sum(splits.values())
    tags: dict[str, int] = {}
    decided = relabelled = tagged = 0
    meta: dict[tuple[str, str], int] = {}
    with_meta = any_metadata(session)
    for ids in _id_queries(session, selection):
        state = session.execute(
            ids.with_only_columns(func.count(ImageState.image_id), func.count(ImageState.label))
        ).one()
        decided += int(state[0])
        relabelled += int(state[1])
        picked = ids.where(ImageState.image_id.is_not(None))
        tag_query = (
            select(ImageTag.tag, func.count())
            .where(ImageTag.image_id.in_(picked))
            .group_by(ImageTag.tag)
        )
        for tag, n in session.execute(tag_query):
            tags[tag] = tags.get(tag, 0) + int(n)
        tagged += int(
            session.scalar(
                select(func.count(distinct(ImageTag.image_id))).where(ImageTag.image_id.in_(picked))
            )
            or 0
        )
        if with_meta:
            meta_query = (
                select(ImageMetadata.key, ImageMetadata.value, func.count())
                .where(ImageMetadata.image_id.in_(ids))
                .group_by(ImageMetadata.key, ImageMetadata.value)
            )
            for key, value, n in session.execute(meta_query):
                meta[(key, value)] = meta.get((key, value), 0) + int(n)
    excluded = 0
    if selection.excluded == "omit":
        excluded = count_selected(session, replace(selection, excluded="only"))
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
