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
Comparing all 2.4 billion pairs with that measure is far too slow, so candidates come first:
each image is despeckled (clamped to the range of its 8 neighbours, which removes isolated
edited pixels), described by the magnitude of its low-frequency 2-D Fourier coefficients
(unchanged by a shift that keeps the ink in the frame) and projected by PCA to 40 numbers
(:func:`catalog.audit.features.candidate_features`).
Pairs closer than ``candidate_radius`` in that space are found with a blocked float32 matrix
product and verified with the exact measure. The radius defaults to
:data:`CANDIDATE_RADIUS_PER_UNIT` times the threshold, calibrated on MNIST, where the planted
copies above lie within 3,520 of their source (a shift that pushes ink out of the frame, or
10 repainted pixels, moves the feature most).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.features import OFFSETS, candidate_features

__all__ = [
    "CANDIDATE_RADIUS_PER_UNIT",
    "DEFAULT_THRESHOLD",
    "EDIT_PIXELS",
    "LOSSY_TOLERANCE",
    "NearDuplicatePair",
    "find_candidate_pairs",
    "find_near_duplicates",
    "near_duplicate_distance",
]

DEFAULT_THRESHOLD = 30.0
"""Largest near-duplicate distance reported by default (0-255 pixel scale)."""

EDIT_PIXELS = 10
"""Number of largest pixel differences the *edit* distance ignores."""

LOSSY_TOLERANCE = 32.0
"""Grey levels of difference per pixel the *lossy* distance ignores."""

CANDIDATE_RADIUS_PER_UNIT = 150.0
"""Candidate radius in feature space per unit of threshold (4,500 for the default 30)."""

_BLOCK = 4096  # images per block of the candidate matrix product
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
        Radius of the candidate search in feature space; defaults to
        ``CANDIDATE_RADIUS_PER_UNIT * threshold``. A larger radius finds more pairs more slowly.
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
    radius = CANDIDATE_RADIUS_PER_UNIT * threshold if candidate_radius is None else candidate_radius
    firsts: list[npt.NDArray[np.int64]] = []
    seconds: list[npt.NDArray[np.int64]] = []
    dists: list[npt.NDArray[np.float64]] = []
    for i, j in find_candidate_pairs(pixels, radius, progress=progress):
        for start in range(0, len(i), _VERIFY_CHUNK):
            ci, cj = i[start : start + _VERIFY_CHUNK], j[start : start + _VERIFY_CHUNK]
            a, b = pixels[ci], pixels[cj]
            d = _distances(a, b, threshold)
            identical = (a == b).reshape(len(a), -1).all(axis=1)
            keep = (d <= threshold) & ~identical
            firsts.append(ci[keep])
            seconds.append(cj[keep])
            dists.append(d[keep])
    if not firsts:
        return []
    first = np.concatenate(firsts)
    second = np.concatenate(seconds)
    dist = np.concatenate(dists)
    order = np.lexsort((second, first, dist))
    return [
        NearDuplicatePair(int(first[k]), int(second[k]), float(dist[k])) for k in order.tolist()
    ]


def find_candidate_pairs(
    pixels: npt.NDArray[np.uint8],
    radius: float,
    *,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Yield pairs of images closer than ``radius`` in the candidate feature space.

    Parameters
    ----------
    pixels
        ``(N, H, W)`` uint8 images.
    radius
        Euclidean radius in the PCA space of despeckled Fourier magnitudes.
    progress
        Called with the number of images whose candidates were searched, as they are done.

    Yields
    ------
    tuple of numpy.ndarray
        ``(first, second)`` int64 position arrays with ``first < second``, in blocks.
    """
    n = len(pixels)
    if n < 2:
        if progress is not None and n:
            progress(n)
        return
    features = candidate_features(pixels)
    # Sort by the first component: a pair closer than radius is closer than radius in it,
    # so a row block only meets the column blocks whose range overlaps its own +- radius.
    order = np.argsort(features[:, 0], kind="stable")
    z = np.ascontiguousarray(features[order])
    half_sq = 0.5 * np.einsum("ij,ij->i", z, z)
    lead = z[:, 0]
    limit = np.float32(0.5 * radius * radius)
    for row in range(0, n, _BLOCK):
        row_stop = min(row + _BLOCK, n)
        col_stop = int(np.searchsorted(lead, lead[row_stop - 1] + radius, side="right"))
        zr = z[row:row_stop]
        for col in range(row, col_stop, _BLOCK):
            col_end = min(col + _BLOCK, col_stop)
            # |zi - zj|^2 < r^2  <=>  zi.zj - |zj|^2/2 > |zi|^2/2 - r^2/2
            gram = zr @ z[col:col_end].T
            gram -= half_sq[col:col_end]
            hits = gram > (half_sq[row:row_stop] - limit)[:, None]
            ri, ci = np.nonzero(hits)
            ri += row
            ci += col
            upper = ci > ri
            a = order[ri[upper]]
            b = order[ci[upper]]
            yield np.minimum(a, b), np.maximum(a, b)
        if progress is not None:
            progress(row_stop - row)


def _check_images(pixels: npt.NDArray[np.uint8], name: str) -> None:
    if pixels.ndim != 3 or pixels.shape[1] < 3 or pixels.shape[2] < 3:
        msg = f"{name} must have shape (N, H, W) with H, W >= 3, got {pixels.shape}"
        raise ValueError(msg)


def _distances(
    first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8], threshold: float | None
) -> npt.NDArray[np.float64]:
    """Near-duplicate distance of each pair; exact when at most ``threshold`` (or always)."""
    m = len(first)
    h, w = first.shape[1:]
    inner = first[:, 1 : h - 1, 1 : w - 1].reshape(m, -1).astype(np.float32)
    other = second.astype(np.float32)
    n_pixels = inner.shape[1]
    keep = max(n_pixels - EDIT_PIXELS, 0)
    best = np.full(m, np.inf, np.float64)
    for dy, dx in OFFSETS:
        window = other[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx].reshape(m, -1)
        diff = np.abs(inner - window)
        excess = np.maximum(diff - np.float32(LOSSY_TOLERANCE), 0)
        lossy = np.einsum("ij,ij->i", excess, excess, dtype=np.float64)
        np.minimum(best, lossy, out=best)
        sq = diff * diff
        if threshold is None:
            todo = np.arange(m)
        else:
            # More than EDIT_PIXELS + t^2/16^2 differences above 16 cannot fall under t.
            big = np.count_nonzero(diff > 16, axis=1)
            todo = np.flatnonzero(big <= EDIT_PIXELS + threshold * threshold / 256)
        if len(todo):
            part = np.partition(sq[todo], keep - 1, axis=1)[:, :keep] if keep else sq[todo, :0]
            edit = part.sum(axis=1, dtype=np.float64)
            best[todo] = np.minimum(best[todo], edit)
    return np.sqrt(best)
