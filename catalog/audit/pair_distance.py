"""Find near-duplicate images: shifted, re-encoded or lightly edited copies.

The measure
-----------
For two images ``a`` and ``b`` of the same shape ``(H, W)``, let ``r`` be the absolute pixel
difference between the interior ``(H - 2) x (W - 2)`` window of ``a`` and a window of ``b``
offset by at most one pixel in each direction (9 offsets). For each offset two distances are
computed on the 0-255 scale:

* the *edit* distance, the L2 norm of ``r`` once its :data:`EDIT_PIXELS` (10) largest entries
  are dropped: a copy with up to 10 pixels overwritten is at distance 0;
* the *lossy* distance, the L2 norm of ``max(r - LOSSY_TOLERANCE, 0)`` with a tolerance of 32
  grey levels: a JPEG re-encode, whose errors stay below about 50, is at distance 0 or close.

The near-duplicate distance is the smallest of these 18 numbers. Ignoring the outer ring of
``a`` keeps a one-pixel shift at distance 0 even when the shift pushes a row of ink out of
the frame. On the full 70,000 MNIST images (``benchmarks/evaluate_audit.py``,
``docs/audit-methods.md``) planted copies (1-pixel shifts in 8 directions, JPEG at quality 75
and 95, 3/5/10 random pixels) are at most 13 (JPEG q=75; all others 0), while of the natural
pairs one is at 34 (two straight vertical 1s of different length) and all others are above
68 (different writers' 1s). The default threshold of 30 is more than twice the largest
planted distance and reports no natural MNIST pair. The two branches are needed together:
natural 1s differ by more than 16 in as few as 8 pixels, so dropping 10 pixels *and*
allowing a tolerance would call them copies.

The search
----------
Comparing all n^2 / 2 pairs with that measure is far too slow, so candidates come first:
each image gets its embedding (:mod:`catalog.similarity.embed`: centred, blurred low
DCT frequencies, unchanged by a shift and barely moved by JPEG or a few repainted pixels),
a nearest-neighbour index (:mod:`catalog.similarity.index`: exact up to 10,000 images,
faiss above, exact again if faiss cannot be imported) gives each image's close neighbours (:func:`catalog.similarity.candidate_pairs`,
about 1.6 pairs per image on MNIST) and only those pairs get the exact measure, in
vectorised blocks (:func:`verify_pairs`). In the audit the embeddings come from the catalog
(:mod:`catalog.audit.near_duplicates`); :func:`find_near_duplicates` does the same for
images in memory.

The exact check is fast because it rarely has to be exact: per offset, the lossy distance
can only be within ``t`` if no pixel differs by more than ``LOSSY_TOLERANCE + t`` and the
edit distance only if at most ``EDIT_PIXELS + t^2 / 16^2`` pixels differ by more than 16,
two counts over uint8 differences; the sums and the partial sort run only on the few pairs
and offsets that pass them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.features import OFFSETS
from catalog.similarity.embed import embed_pixels
from catalog.similarity.index import build_index
from catalog.similarity.neighbours import CANDIDATE_RADIUS, NeighbourIndex, candidate_pairs

__all__ = [
    "DEFAULT_THRESHOLD",
    "EDIT_PIXELS",
    "LOSSY_TOLERANCE",
    "NearDuplicatePair",
    "find_near_duplicates",
    "near_duplicate_distance",
    "sorted_pairs",
    "verify_pairs",
]

DEFAULT_THRESHOLD = 30.0
"""Largest near-duplicate distance reported by default (0-255 pixel scale)."""

EDIT_PIXELS = 10
"""Number of largest pixel differences the *edit* distance ignores."""

LOSSY_TOLERANCE = 32.0
"""Grey levels of difference per pixel the *lossy* distance ignores."""

_VERIFY_CHUNK = 2048  # pairs verified at once


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two distinct images closer than the threshold.

    Attributes
    ----------
    first, second
        Positions into the ``pixels`` array passed to :func:`find_near_duplicates`,
        with ``first < second``.
    distance
        Near-duplicate distance (see the module docstring), on the 0-255 pixel scale.
    """

    first: int
    second: int
    distance: float


def near_duplicate_distance(
    first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float64]:
    """Compute the near-duplicate distance of image pairs.

    Parameters
    ----------
    first, second
        Arrays of shape ``(M, H, W)``; row ``i`` of ``first`` is compared with row ``i`` of
        ``second``. ``H`` and ``W`` must be at least 3.

    Returns
    -------
    numpy.ndarray
        ``(M,)`` float64 distances (0 for identical images or planted copies).

    Raises
    ------
    ValueError
        If the shapes differ or an image is smaller than 3 x 3.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 28, 28), np.uint8)
    >>> a[0, 8:20, 12:15] = 255
    >>> float(near_duplicate_distance(a, np.roll(a, 1, axis=2))[0])
    0.0
    """
    first = np.asarray(first)
    second = np.asarray(second)
    _check_images(first, "first")
    if first.shape != second.shape:
        msg = f"first and second must have the same shape, got {first.shape} and {second.shape}"
        raise ValueError(msg)
    out = np.empty(len(first), np.float64)
    for start in range(0, len(first), _VERIFY_CHUNK):
        stop = start + _VERIFY_CHUNK
        out[start:stop] = _distances(first[start:stop], second[start:stop], None)
    return out


def find_near_duplicates(
    pixels: npt.NDArray[np.uint8],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    candidate_radius: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[NearDuplicatePair]:
    """Find pairs of distinct images within ``threshold`` of each other.

    Byte-identical pairs are never reported (exact duplicates are another check).

    Parameters
    ----------
    pixels
        ``(N, H, W)`` uint8 images.
    threshold
        Largest near-duplicate distance reported (see the module docstring).
    candidate_radius
        Embedding distance within which a neighbour is a candidate (default
        :data:`catalog.similarity.neighbours.CANDIDATE_RADIUS`; a nearest neighbour is one
        within the larger ``NEAREST_RADIUS`` too). A larger radius finds more pairs more slowly.
    progress
        Called with the number of images whose candidates were searched, as they are done.

    Returns
    -------
    list of NearDuplicatePair
        Sorted by distance, then by ``first`` and ``second``.

    Raises
    ------
    ValueError
        If ``pixels`` is not a 3-D array of images at least 3 x 3, or ``threshold`` is negative.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((3, 28, 28), np.uint8)
    >>> images[0, 6:22, 12:15] = 255  # a "1"
    >>> images[1, 6:22, 8:20] = 128  # a grey block
    >>> images[2] = np.roll(images[0], 1, axis=1)  # the "1" one pixel to the right
    >>> find_near_duplicates(images)
    [NearDuplicatePair(first=0, second=2, distance=0.0)]
    """
    pixels = np.asarray(pixels)
    _check_images(pixels, "pixels")
    if threshold < 0:
        msg = f"threshold must be >= 0, got {threshold}"
        raise ValueError(msg)
    n = len(pixels)
    if n < 2:
        if progress is not None and n:
            progress(n)
        return []
    vectors = embed_pixels(pixels)
    index = NeighbourIndex(np.arange(n, dtype=np.int64), vectors, build_index(vectors))
    radius = CANDIDATE_RADIUS if candidate_radius is None else candidate_radius
    firsts, seconds, dists = [], [], []
    for block in candidate_pairs(index, radius=radius):
        for start in range(0, len(block), _VERIFY_CHUNK):
            ci = block.first[start : start + _VERIFY_CHUNK]
            cj = block.second[start : start + _VERIFY_CHUNK]
            keep, d = verify_pairs(pixels[ci], pixels[cj], threshold)
            firsts.append(ci[keep])
            seconds.append(cj[keep])
            dists.append(d[keep])
    if progress is not None:
        progress(n)
    return sorted_pairs(firsts, seconds, dists)


def sorted_pairs(
    firsts: list[npt.NDArray[np.int64]],
    seconds: list[npt.NDArray[np.int64]],
    dists: list[npt.NDArray[np.float64]],
) -> list[NearDuplicatePair]:
    """Join blocks of verified pairs, sorted by distance, then ``first`` and ``second``."""
    if not firsts:
        return []
    first, second, dist = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(dists)
    order = np.lexsort((second, first, dist))
    return [
        NearDuplicatePair(int(first[k]), int(second[k]), float(dist[k])) for k in order.tolist()
    ]


def verify_pairs(
    first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8], threshold: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Which pairs are near duplicates: within ``threshold`` and not byte-identical.

    Returns
    -------
    tuple of numpy.ndarray
        ``(keep, distances)``: ``(M,)`` bool, and ``(M,)`` float64 distances, exact where
        ``keep`` (elsewhere a value above ``threshold``, or ``inf``).
    """
    d = _distances(first, second, threshold)
    identical = (first == second).reshape(len(first), -1).all(axis=1)
    return (d <= threshold) & ~identical, d


def _check_images(pixels: npt.NDArray[np.uint8], name: str) -> None:
    if pixels.ndim != 3 or pixels.shape[1] < 3 or pixels.shape[2] < 3:
        msg = f"{name} must have shape (N, H, W) with H, W >= 3, got {pixels.shape}"
        raise ValueError(msg)


def _distances(
    first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8], threshold: float | None
) -> npt.NDArray[np.float64]:
    """Near-duplicate distance of each pair; exact when at most ``threshold`` (or always).

    Pixel differences are taken in uint8 (``max - min``, no widening); sums run only on
    the pairs and offsets that the two counts of the module docstring let through.
    """
    m = len(first)
    h, w = first.shape[1:]
    inner = np.ascontiguousarray(first[:, 1 : h - 1, 1 : w - 1]).reshape(m, -1)
    n_pixels = inner.shape[1]
    keep = max(n_pixels - EDIT_PIXELS, 0)
    best = np.full(m, np.inf, np.float64)
    limit = np.inf if threshold is None else threshold
    lossy_max = LOSSY_TOLERANCE + limit  # a larger difference alone puts lossy above limit
    edit_big = EDIT_PIXELS + limit * limit / 256  # more differences > 16: edit above limit
    for dy, dx in OFFSETS:
        window = second[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx].reshape(m, -1)
        diff = np.maximum(inner, window)
        diff -= np.minimum(inner, window)  # |a - b| in uint8
        if threshold is None:
            lossy_rows = edit_rows = np.arange(m)
        else:
            lossy_rows = np.flatnonzero(diff.max(axis=1) <= lossy_max)
            edit_rows = np.flatnonzero(np.count_nonzero(diff > 16, axis=1) <= edit_big)
        if len(lossy_rows):
            excess = np.maximum(diff[lossy_rows].astype(np.float32) - LOSSY_TOLERANCE, 0)
            lossy = np.einsum("ij,ij->i", excess, excess, dtype=np.float64)
            best[lossy_rows] = np.minimum(best[lossy_rows], lossy)
        if len(edit_rows):
            sq = diff[edit_rows].astype(np.float32) ** 2
            part = np.partition(sq, keep - 1, axis=1)[:, :keep] if keep else sq[:, :0]
            edit = part.sum(axis=1, dtype=np.float64)
            best[edit_rows] = np.minimum(best[edit_rows], edit)
    return np.sqrt(best)
