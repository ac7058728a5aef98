"""Nearest neighbours of images, and near-duplicate candidates, from stored embeddings.

:func:`build_neighbour_index` embeds what a selection lacks, loads the embeddings and builds
a search index over them (:mod:`catalog.similarity.index`); a web view builds one per dataset
and keeps it. :func:`nearest` answers "which images look most like these" for the image page
and ``identify``. :func:`candidate_pairs` gives the audit its near-duplicate candidates in
about ``1.6 n`` pairs on MNIST instead of all ``n^2 / 2``: each image's :data:`CANDIDATE_K`
nearest neighbours within :data:`CANDIDATE_RADIUS` and its nearest within
:data:`NEAREST_RADIUS`, to be confirmed by the audit's exact shift-tolerant distance.

Calibration (``docs/ann-choice.md``): on the 70,000 MNIST digits, planted copies (1-pixel
shifts, JPEG at quality 75, a few repainted pixels, a contrast stretch) lie within 0.15 of
their source in embedding space, except shifts that push ink out of the frame (up to
about 0.2), which are their source's nearest neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Dataset, Image
from catalog.errors import ImageNotFoundError, SelectionError
from catalog.selection import Selection
from catalog.similarity.embed import DIMENSIONS, KIND, embed_pixels
from catalog.similarity.index import Method, NeighbourSearch, build_index
from catalog.similarity.vectors import compute_embeddings, load_embeddings, load_embeddings_of

__all__ = [
    "CANDIDATE_K",
    "CANDIDATE_RADIUS",
    "NEAREST_RADIUS",
    "CandidatePairs",
    "NeighbourIndex",
    "Neighbours",
    "build_neighbour_index",
    "candidate_pairs",
    "nearest",
]

CANDIDATE_K = 15
"""Neighbours of each image considered as near-duplicate candidates."""

CANDIDATE_RADIUS = 0.15
"""Any of an image's :data:`CANDIDATE_K` nearest neighbours this close is a candidate."""

NEAREST_RADIUS = 0.25
"""An image's nearest neighbour this close is a candidate too."""

_PAIR_BLOCK = 65536  # candidate pairs yielded at a time
_QUERY_ROWS = 65536  # images whose neighbours are searched at a time


@dataclass(frozen=True)
class NeighbourIndex:
    """A search index over the embeddings of a set of images."""

    ids: npt.NDArray[np.int64]  # (n,) image ids, row i of the index is image ids[i]
    vectors: npt.NDArray[np.float32]  # (n, d)
    search: NeighbourSearch
    kind: str = KIND

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _order(self) -> npt.NDArray[np.int64]:
        return np.argsort(self.ids, kind="stable")

    def rows_of(self, image_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Row of each image id in the index, or -1 for an image not in it."""
        if not len(self.ids):
            return np.full(len(image_ids), -1, np.int64)
        at = np.minimum(np.searchsorted(self.ids, image_ids, sorter=self._order), len(self.ids) - 1)
        rows = self._order[at]
        return np.where(self.ids[rows] == image_ids, rows, -1)


@dataclass(frozen=True)
class Neighbours:
    """The nearest indexed images of one image, nearest first (the image itself excluded)."""

    image_id: int
    ids: tuple[int, ...]
    distances: tuple[float, ...]


@dataclass(frozen=True)
class CandidatePairs:
    """A block of candidate pairs of image ids, ``first < second``, with their distance."""

    first: npt.NDArray[np.int64]
    second: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.first)


def build_neighbour_index(
    session: Session,
    selection: Selection | None = None,
    *,
    method: Method = "auto",
    progress: Callable[[int], None] | None = None,
) -> NeighbourIndex:
    """Embed the selected images that lack an embedding, then index them all.

    Parameters
    ----------
    session
        An open session (new embeddings are written through it; the caller commits).
    selection
        Which images to index (default: all of the catalog's only dataset).
    method
        ``"auto"``, ``"exact"`` or ``"faiss"`` (see :func:`catalog.similarity.index.build_index`).
    progress
        Called with the number of images embedded, as they are done.

    Raises
    ------
    DatasetNotFoundError, SelectionError
        If the selection names no dataset of the catalog or an unknown split.
    """
    compute_embeddings(session, selection, progress=progress)
    stored = load_embeddings(session, selection)
    return NeighbourIndex(stored.ids, stored.vectors, build_index(stored.vectors, method=method))


def nearest(
    session: Session,
    image_ids: Sequence[int],
    k: int = 10,
    *,
    index: NeighbourIndex | None = None,
) -> list[Neighbours]:
    """The ``k`` nearest images of each of ``image_ids``.

    Without ``index``, one is built over the whole dataset of the images (embedding what it
    lacks, so the session writes); with one, nothing is written: an image outside the index
    or without a stored embedding is embedded on the fly from its pixels.

    Parameters
    ----------
    session
        An open session on the catalog.
    image_ids
        Images to find neighbours of (ids of the ``images`` table).
    k
        Neighbours per image.
    index
        A :class:`NeighbourIndex` to search (as a web view keeps one per dataset).

    Returns
    -------
    list of Neighbours
        One per image id, in order; each holds up to ``k`` other images, nearest first.

    Raises
    ------
    ImageNotFoundError
        If an id is not an image of the catalog.
    SelectionError
        If no index is given and the images belong to several datasets.
    """
    wanted = np.asarray(list(image_ids), dtype=np.int64)
    if index is None:
        index = build_neighbour_index(session, Selection(dataset=_dataset_of(session, wanted)))
    vectors = _vectors_of(session, wanted, index)
    positions, distances = index.search.query(vectors, k + 1)
    out: list[Neighbours] = []
    for image_id, row_p, row_d in zip(wanted.tolist(), positions, distances, strict=True):
        valid = row_p >= 0
        ids = index.ids[row_p[valid]]
        dist = row_d[valid]
        others = ids != image_id
        out.append(
            Neighbours(image_id, tuple(ids[others][:k].tolist()), tuple(dist[others][:k].tolist()))
        )
    return out


def candidate_pairs(
    index: NeighbourIndex,
    *,
    k: int = CANDIDATE_K,
    radius: float = CANDIDATE_RADIUS,
    nearest_radius: float = NEAREST_RADIUS,
    rows: npt.NDArray[np.int64] | None = None,
    vectors: npt.NDArray[np.float32] | None = None,
    reach: npt.NDArray[np.float32] | None = None,
) -> Iterator[CandidatePairs]:
    """Yield near-duplicate candidate pairs of images.

    A pair is a candidate when one image is among the other's ``k`` nearest neighbours
    within ``radius``, or is its very nearest neighbour within ``nearest_radius``. A
    planted copy is almost always its source's nearest neighbour, so the second rule
    catches the few copies that move further (a shift pushing ink out of the frame),
    without the many natural pairs a wider ``radius`` would bring.

    Each unordered pair is yielded once, as image ids with ``first < second``, in blocks
    sorted by ``first`` then ``second``. Images with more than ``k`` identical twins may miss
    candidates beyond them, so pass one representative per group of byte-identical images.

    Parameters
    ----------
    index
        The images to search, from :func:`build_neighbour_index`.
    k
        Neighbours per image considered.
    radius
        Largest embedding distance of a candidate among the ``k`` nearest.
    nearest_radius
        Largest embedding distance of a candidate that is the nearest neighbour.
    rows
        Only these rows of the index look for their candidates (default: all). Pairs
        between two other images are then left out, unless one is a candidate of these.
    vectors
        The embeddings of ``rows`` (default: from ``index.vectors``).
    reach
        A ``(len(rows), 2)`` array to fill with each searched image's distance to its
        nearest and to its ``k``-th nearest neighbour (``inf`` where it has fewer than ``k``
        others): an image added farther than both cannot change its candidates.

    Examples
    --------
    >>> import numpy as np
    >>> from catalog.similarity.index import build_index
    >>> vectors = np.array([[0.0, 1.0], [0.0, 0.9], [1.0, 0.0]], np.float32)
    >>> ids = np.array([7, 3, 9])
    >>> index = NeighbourIndex(ids, vectors, build_index(vectors))
    >>> [(p.first.tolist(), p.second.tolist()) for p in candidate_pairs(index)]
    [([3], [7])]
    """
    n = len(index)
    if reach is not None:
        reach[:] = np.inf
    if n < 2:
        return
    whole = k <= n - 1  # else every other image is among the k nearest, however far
    k = min(k, n - 1)
    searched = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    found_a: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)]
    found_b: list[npt.NDArray[np.int64]] = [np.zeros(0, np.int64)]
    found_d: list[npt.NDArray[np.float32]] = [np.zeros(0, np.float32)]
    # Queried in blocks of rows, so the (n, k) answers never exist whole (1M x 16 x 12 bytes).
    for start in range(0, len(searched), _QUERY_ROWS):
        block = searched[start : start + _QUERY_ROWS]
        mine = index.vectors[block] if vectors is None else vectors[start : start + len(block)]
        positions, distances = _others(index, block, mine, k)
        if reach is not None:
            reach[start : start + len(block), 0] = distances[:, 0]
            reach[start : start + len(block), 1] = distances[:, k - 1] if whole else np.inf
        close = (distances <= radius) & (positions >= 0)
        close[:, 0] |= (distances[:, 0] <= nearest_radius) & (positions[:, 0] >= 0)
        found_a.append(index.ids[np.broadcast_to(block[:, None], close.shape)[close]])
        found_b.append(index.ids[positions[close]])
        found_d.append(distances[close])
    a, b, d = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_d)
    first, second = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((second, first))
    first, second, d = first[order], second[order], d[order]
    unique = np.ones(len(first), bool)
    unique[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    first, second, d = first[unique], second[unique], d[unique]
    for start in range(0, len(first), _PAIR_BLOCK):
        stop = start + _PAIR_BLOCK
        yield CandidatePairs(first[start:stop], second[start:stop], d[start:stop])


def _others(
    index: NeighbourIndex, rows: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The ``k`` nearest other points of the indexed points ``rows`` (their ``vectors``),
    nearest first.

    Each row's own hit is removed (when the search missed it, as an approximate one may,
    its farthest hit goes instead).
    """
    positions, distances = index.search.query(vectors, k + 1)
    is_self = positions == rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    first_self = np.argmax(is_self, axis=1)  # a duplicate of the row counts once
    keep = np.ones(positions.shape, bool)
    keep[np.arange(len(rows)), first_self] = False
    return (
        positions[keep].reshape(len(rows), k),
        distances[keep].reshape(len(rows), k),
    )


def _dataset_of(session: Session, image_ids: npt.NDArray[np.int64]) -> str:
    """The name of the one dataset holding ``image_ids``."""
    names = set(
        session.scalars(
            select(Dataset.name)
            .join(Image, Image.dataset_id == Dataset.id)
            .where(Image.id.in_(image_ids.tolist()))
            .distinct()
        )
    )
    if len(names) > 1:
        msg = f"Images {image_ids.tolist()[:5]} are in several datasets ({', '.join(sorted(names))}): pass an index"
        raise SelectionError(msg)
    if not names:
        msg = f"No image with id {image_ids.tolist()[:5]} in the catalog"
        raise ImageNotFoundError(msg)
    return names.pop()


def _vectors_of(
    session: Session, image_ids: npt.NDArray[np.int64], index: NeighbourIndex
) -> npt.NDArray[np.float32]:
    """Embeddings of ``image_ids``: from the index, else the catalog, else their pixels."""
    out = np.zeros((len(image_ids), index.vectors.shape[1]), np.float32)
    rows = index.rows_of(image_ids)
    found = rows >= 0
    out[found] = index.vectors[rows[found]]
    if not found.all():
        stored = load_embeddings_of(session, image_ids[~found], kind=index.kind)
        at = np.flatnonzero(~found)[np.isin(image_ids[~found], stored.ids)]
        out[at] = stored.vectors  # both in image_ids order
        found[at] = True
    if not found.all():
        out[~found] = _embed_images(session, image_ids[~found])
    return out


def _embed_images(session: Session, image_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Embed images from their pixels (grouped by size), without storing anything."""
    query = select(Image.id, Image.height, Image.width, Image.pixels).where(
        Image.id.in_(image_ids.tolist())
    )
    rows = {int(row.id): row for row in session.connection().execute(query)}
    missing = [i for i in image_ids.tolist() if i not in rows]
    if missing:
        msg = f"No image with id {missing[0]} in the catalog"
        raise ImageNotFoundError(msg)
    out = np.zeros((len(image_ids), DIMENSIONS), np.float32)
    shapes = [(rows[i].height, rows[i].width) for i in image_ids.tolist()]
    for height, width in set(shapes):
        at = [p for p, shape in enumerate(shapes) if shape == (height, width)]
        blob = b"".join(rows[int(image_ids[p])].pixels for p in at)
        pixels = np.frombuffer(blob, np.uint8).reshape(len(at), height, width)
        out[at] = embed_pixels(pixels)
    return out
