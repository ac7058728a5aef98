"""The browsing half of :class:`catalog.Catalog`: one image at a time, and its look-alikes.

What the image page, thumbnails and the review page of the web view ask, and what a
script asks about single images: each method opens one read-only session.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from catalog.db.engine import session_scope

if TYPE_CHECKING:  # numpy and the similarity index load on first use: not for a count
    import numpy as np
    import numpy.typing as npt

    from catalog.select.details import ImageDetails
    from catalog.select.records import ImageRow
    from catalog.similarity.lookalikes import Neighbour, NeighbourCache


class BrowseMixin:
    """image, image_details, thumbnail pixels, label names, look-alikes."""

    engine: Engine
    _lookalikes: NeighbourCache | None = None

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

    def _cache(self) -> NeighbourCache:
        if self._lookalikes is None:
            from catalog.similarity.lookalikes import NeighbourCache

            self._lookalikes = NeighbourCache(self.engine)
        return self._lookalikes
