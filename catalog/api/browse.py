"""The browsing half of :class:`catalog.Catalog`: one image at a time, and its look-alikes.

What the image page, thumbnails and the review page of the web view ask, and what a
script asks about single images: each method opens one read-only session.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from catalog.db.engine import session_scope

if TYPE_CHECKING:  # numpy and the similarity index load on first use: not for a count
    import numpy as np
    import numpy.typing as npt

    from catalog.select.details import ImageDetails
    from catalog.select.facets import Facets
    from catalog.select.records import ImageRow
    from catalog.selection import Selection
    from catalog.similarity.lookalikes import Neighbour, NeighbourCache
    from catalog.similarity.projection import MapPoints


#: Maps a catalog object keeps (the newest), and the lock around them.
MAPS_KEPT = 8
_MAPS_LOCK = threading.Lock()
_MAP_BUILD_LOCK = threading.Lock()
_LAYOUT_LOCK = threading.Lock()


class BrowseMixin:
    """image, image_details, thumbnail pixels, label names, look-alikes."""

    engine: Engine
    _lookalikes: NeighbourCache | None = None
    _maps: dict[Any, Any] | None = None  # maps and id lists, by what and catalog version

    def image(
        self, split: str, index: int, *, dataset: str | None = None
    ) -> tuple[ImageRow, npt.NDArray[np.uint8]]:
        """One image's row and pixels."""
        from catalog.select.details import get_image

        with session_scope(self.engine) as session:
            return get_image(session, dataset, split, index)

    def image_details(self, split: str, index: int, *, dataset: str | None = None) -> ImageDetails:
        """One image with its pixels, sources and exported files (see
        :func:`catalog.select.details.image_details`)."""
        from catalog.select.details import image_details

        with session_scope(self.engine) as session:
            return image_details(session, dataset, split, index)

    def pixels_by_digest(self, sha256: str) -> npt.NDArray[np.uint8]:
        """The pixels of an image whose content digest is ``sha256``."""
        from catalog.select.details import pixels_by_digest

        with session_scope(self.engine) as session:
            return pixels_by_digest(session, sha256)

    def label_names(self, dataset: str | None = None) -> dict[int, str]:
        """The class name of each label of ``dataset`` (``{3: "3"}`` for digits)."""
        from catalog.select.details import label_names

        with session_scope(self.engine) as session:
            return label_names(session, dataset)

    def lookalikes(self, image_id: int, dataset: str, k: int) -> list[Neighbour]:
        """The ``k`` images of ``dataset`` that look most like image ``image_id``; the
        dataset's index is built on the first call and kept by this catalog object."""
        return self._cache().nearest(image_id, dataset, k)

    def lookalikes_if_ready(self, image_id: int, dataset: str, k: int) -> list[Neighbour] | None:
        """:meth:`lookalikes` if the dataset's index is built, else None at once (the
        index is then built in a background thread)."""
        return self._cache().nearest_if_ready(image_id, dataset, k)

    def warm_lookalikes(self, datasets: list[str]) -> threading.Thread:
        """Build the look-alike indexes of ``datasets`` in a background thread."""
        return self._cache().warm(datasets)

    def facets(self, selection: Selection) -> Facets:
        """How ``selection``'s images spread over split, label, tag, decision state and
        each metadata key (see :mod:`catalog.select.facets`)."""
        from catalog.select.facets import count_facets

        with session_scope(self.engine) as session:
            return count_facets(session, selection)

    def selection_ids(self, selection: Selection) -> npt.NDArray[np.int64]:
        """The ids of ``selection``, in its order; the last few are kept until an image or
        a decision is added (a grid in random order pages through them)."""
        from catalog.select.ids import select_ids
        from catalog.similarity.projection import catalog_version

        with session_scope(self.engine) as session:
            key = ("ids", selection, catalog_version(session))
            with _MAPS_LOCK:
                kept = self._maps.get(key) if self._maps is not None else None
            if kept is not None:
                ids: npt.NDArray[np.int64] = kept
                return ids
            ids = select_ids(session, selection)
        self._keep(key, ids)
        return ids

    def keep_selected(self, selection: Selection, ids: Sequence[int]) -> list[int]:
        """Those of ``ids`` that ``selection`` holds, in their order."""
        from catalog.select.facets import keep_selected

        with session_scope(self.engine) as session:
            return keep_selected(session, selection, ids)

    def rows_of(self, ids: Sequence[int] | npt.NDArray[np.int64]) -> list[ImageRow]:
        """The rows of images by catalog id, in that order (unknown ids left out)."""
        import numpy as np

        from catalog.select.listings import rows_of_ids

        with session_scope(self.engine) as session:
            return list(rows_of_ids(session, np.asarray(ids, dtype=np.int64)))

    def pixels_of(self, ids: Sequence[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The pixels of images by catalog id, in that order, as one ``(n, H, W)`` array."""
        import numpy as np

        from catalog.select.reads import pixels_of

        with session_scope(self.engine) as session:
            return pixels_of(session, np.asarray(ids, dtype=np.int64))

    def image_ids(
        self, refs: Sequence[tuple[str, int]], *, dataset: str | None = None
    ) -> list[int]:
        """The catalog ids of images ``(split, index)`` of ``dataset``, in that order."""
        from catalog.curation.decisions import resolve

        with session_scope(self.engine) as session:
            return resolve(session, dataset, refs)

    def map_points(
        self, selection: Selection, *, cap: int = 20_000, seed: int = 0, wait: bool = False
    ) -> MapPoints:
        """``selection``'s images on a 2-D map, at most ``cap`` of them (a seeded sample of
        a larger selection). The first answer is the quick layout (Fisher's discriminant,
        ``pending`` set) while a t-SNE layout is computed in a background thread; later
        answers give the t-SNE one once done. ``wait`` waits for it instead. The last few
        maps are kept until an image or a decision is added."""
        from catalog.similarity.projection import (
            catalog_version,
            map_inputs,
            quick_map,
            wants_tsne,
        )

        with session_scope(self.engine) as session:
            key = (selection, cap, seed, catalog_version(session))
            with _MAP_BUILD_LOCK:  # one map read at a time: a request waits for a warm-up
                with _MAPS_LOCK:
                    kept = self._maps.get(key) if self._maps is not None else None
                if kept is not None and not (wait and kept.pending):
                    drawn: MapPoints = kept
                    return drawn
                inputs = map_inputs(session, selection, cap=cap, seed=seed)
                if kept is None:
                    kept = quick_map(inputs, pending=wants_tsne(inputs))
                    self._keep(key, kept)
        if not kept.pending:
            return kept
        if wait:
            return self._lay_out(key, inputs, seed)

        def background() -> None:
            _lower_priority()  # pages stay quick while t-SNE runs
            self._lay_out(key, inputs, seed)

        threading.Thread(target=background, name="map-layout", daemon=True).start()
        return kept

    def _lay_out(self, key: Any, inputs: Any, seed: int) -> MapPoints:
        """The t-SNE map of ``inputs``, kept under ``key`` (one t-SNE at a time: the
        machine has few cores). A failure keeps the quick map, no longer pending."""
        from dataclasses import replace

        from catalog.similarity.projection import quick_map, tsne_map

        with _LAYOUT_LOCK:
            with _MAPS_LOCK:
                kept = self._maps.get(key) if self._maps is not None else None
            if kept is not None and not kept.pending:
                done: MapPoints = kept
                return done
            try:
                found = tsne_map(inputs, seed=seed)
            except Exception:  # noqa: BLE001 - a layout library's failure: keep the quick map
                found = replace(kept or quick_map(inputs), pending=False)
            self._keep(key, found)
            return found

    def warm_maps(self, datasets: list[str]) -> threading.Thread:
        """Draw the map of each of ``datasets`` in a background thread (a large catalog's
        first map reads every id and may embed the drawn images)."""
        from catalog.selection import Selection

        def build() -> None:
            for name in datasets:
                self.map_points(Selection(dataset=name))

        thread = threading.Thread(target=build, name="map-warm-up", daemon=True)
        thread.start()
        return thread

    def _keep(self, key: Any, value: Any) -> None:
        with _MAPS_LOCK:
            if self._maps is None:
                self._maps = {}
            self._maps[key] = value
            while len(self._maps) > MAPS_KEPT:
                del self._maps[next(iter(self._maps))]

    def _cache(self) -> NeighbourCache:
        if self._lookalikes is None:
            from catalog.similarity.lookalikes import NeighbourCache

            self._lookalikes = NeighbourCache(self.engine)
        return self._lookalikes


def _lower_priority() -> None:
    """Lower this thread's CPU priority (niceness 10; the threads it starts inherit it),
    where the system allows: on Linux a thread's niceness is its own."""
    import contextlib
    import os

    with contextlib.suppress(AttributeError, OSError):  # not Linux-like, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
