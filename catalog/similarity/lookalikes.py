"""Look-alikes of one image at a time (the image and review pages): one nearest-neighbour
index per dataset, built once and kept for the life of the cache.

The index is built on first use (or warmed at start-up) from the embeddings the
catalog stores, or, where some are missing, from the pixels in memory: a lookup
never writes. Search is exact (:class:`~catalog.similarity.index.ExactIndex`):
one query against 70,000 embeddings takes milliseconds, and nothing needs faiss.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from catalog.db.engine import session_scope
from catalog.select.details import rows_by_id
from catalog.select.ids import select_ids
from catalog.select.reads import iter_pixel_blocks
from catalog.select.records import ImageRow
from catalog.selection import Selection
from catalog.similarity.embed import embed_pixels
from catalog.similarity.index import build_index
from catalog.similarity.neighbours import NeighbourIndex, nearest
from catalog.similarity.vectors import load_embeddings


@dataclass(frozen=True)
class Neighbour:
    """An image like another one, and how far its embedding is from that one's."""

    row: ImageRow
    distance: float


class NeighbourCache:
    """One :class:`NeighbourIndex` per dataset, built once and shared by requests."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._indexes: dict[str, NeighbourIndex] = {}
        self._lock = threading.Lock()
        self._started: set[str] = set()  # datasets being built in the background

    def index(self, dataset: str) -> NeighbourIndex:
        built = self._indexes.get(dataset)  # no lock: another dataset may be building
        if built is not None:
            return built
        with self._lock:
            if dataset not in self._indexes:
                self._indexes[dataset] = self._build(dataset)
            return self._indexes[dataset]

    def _build(self, dataset: str) -> NeighbourIndex:
        everything = _whole(dataset)
        with session_scope(self.engine) as session:
            ids = select_ids(session, everything)
            stored = load_embeddings(session, everything)
            if len(stored) == len(ids):
                ids, vectors = stored.ids, stored.vectors
            else:  # embed in memory: a read-only server must not store them
                parts = [
                    (block.ids, embed_pixels(block.pixels))
                    for block in iter_pixel_blocks(session, everything)
                ]
                ids = np.concatenate([p[0] for p in parts]) if parts else ids
                vectors = np.concatenate([p[1] for p in parts]) if parts else stored.vectors
        return NeighbourIndex(ids, vectors, build_index(vectors, method="exact"))

    def nearest(self, image_id: int, dataset: str, k: int) -> list[Neighbour]:
        """The ``k`` images of ``dataset`` that look most like image ``image_id``."""
        index = self.index(dataset)
        with session_scope(self.engine) as session:
            (found,) = nearest(session, [image_id], k, index=index)
            rows = rows_by_id(session, list(found.ids))
        return [
            Neighbour(rows[i], round(float(d), 4))
            for i, d in zip(found.ids, found.distances, strict=True)
            if i in rows
        ]

    def nearest_if_ready(self, image_id: int, dataset: str, k: int) -> list[Neighbour] | None:
        """:meth:`nearest` if ``dataset``'s index is built, else None at once (and the
        index is built in the background, if it is not under way already): a page
        answers without waiting seconds for a million embeddings."""
        if dataset not in self._indexes:
            if dataset not in self._started:
                self.warm([dataset])
            return None
        return self.nearest(image_id, dataset, k)

    def warm(self, datasets: list[str]) -> threading.Thread:
        """Build the indexes of ``datasets`` in a background thread."""
        self._started.update(datasets)

        def build() -> None:
            for name in datasets:
                try:
                    self.index(name)
                except Exception:  # a failed build is retried by the next lookup
                    self._started.discard(name)
                    raise

        thread = threading.Thread(target=build, name="neighbour-index", daemon=True)
        thread.start()
        return thread


def _whole(dataset: str) -> Selection:
    """Every image of ``dataset``, excluded ones too (a neighbour's label helps judge)."""
    return Selection(dataset=dataset, excluded="include")
