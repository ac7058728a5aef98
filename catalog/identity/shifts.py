"""Match one block of images: unshifted first, then moved by whole-pixel shifts, batched.

Each image is searched unshifted (approximately, then exactly if unconfirmed). Images
still unconfirmed try every shift within :data:`~catalog.identity.signature.MAX_SHIFT`:
first those next to the offset between their centre of mass and the reference's (right
when the reference is centred by mass, as MNIST is), then the rest, each smallest first,
and the first shift that confirms is the match. Rather than one search per shift, every
(image, shift) pair of a round is searched in one batched call per
:data:`PAIRS` pairs, so a block of images not in the reference costs two searches of
its pairs, not two dozen small ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.identity.confirm import (
    Columns,
    Confirmed,
    Reference,
    centroids,
    search_and_confirm,
)
from catalog.identity.signature import MAX_SHIFT, Pixels, shift_order, shifted

#: (image, shift) pairs searched per batched call.
PAIRS = 16_384


def match_block(
    session: Session, reference: Reference, rows: npt.NDArray[np.int64], pixels: Pixels,
    cols: Columns,
) -> None:  # fmt: skip
    """Match ``pixels`` (the images at ``rows`` of ``cols``) and record what matched."""
    none = np.zeros((len(rows), 2), np.int8)
    found = search_and_confirm(session, reference, pixels, exact=False)
    found.record(cols, rows, none)
    todo = np.flatnonzero(~found.ok)
    if len(todo):  # the approximate search may miss; search the unconfirmed exactly
        again = search_and_confirm(session, reference, pixels[todo], exact=True)
        again.record(cols, rows[todo], none[todo])
        todo = todo[~again.ok]
    if not len(todo):
        return
    shifts = np.asarray(shift_order(), dtype=np.int8)
    offsets = np.asarray(reference.centre) - centroids(pixels[todo])
    suggested = suggested_shifts(offsets, shifts)
    for first_round in (True, False):
        image, shift = np.nonzero(
            suggested if first_round else ~suggested
        )  # each image's shifts, smallest first
        if not len(image):
            continue
        results = [
            _search_pairs(session, reference, pixels, todo[image[s:e]], shifts[shift[s:e]])
            for s, e in _spans(len(image))
        ]
        result = Confirmed.concatenate(results)
        # The first shift that confirms, per image (pairs are in each image's order).
        hits = np.flatnonzero(result.ok)
        _, first = np.unique(image[hits], return_index=True)
        chosen = hits[first]
        result.take(chosen).record(cols, rows[todo[image[chosen]]], shifts[shift[chosen]])
        keep = np.ones(len(todo), dtype=bool)
        keep[image[chosen]] = False
        todo, suggested = todo[keep], suggested[keep]
        if not len(todo):
            return


def suggested_shifts(
    offsets: npt.NDArray[np.float64], shifts: npt.NDArray[np.int8]
) -> npt.NDArray[np.bool_]:
    """``(images, shifts)``: the whole-pixel shifts next to each fractional offset.

    >>> shifts = np.asarray([(0, 1), (1, 1), (2, 2)], np.int8)
    >>> suggested_shifts(np.array([[0.4, 0.6]]), shifts).tolist()
    [[True, True, False]]
    """
    near = np.zeros((len(offsets), len(shifts)), dtype=bool)
    for axis in (0, 1):
        low, high = np.floor(offsets[:, axis]), np.ceil(offsets[:, axis])
        wanted = shifts[None, :, axis]
        hit = (low[:, None] == wanted) | (high[:, None] == wanted)
        near = hit if axis == 0 else near & hit
    within = (np.abs(shifts) <= MAX_SHIFT).all(axis=1) & (shifts != 0).any(axis=1)
    found: npt.NDArray[np.bool_] = near & within[None, :]
    return found


def _spans(n: int) -> list[tuple[int, int]]:
    return [(s, min(s + PAIRS, n)) for s in range(0, n, PAIRS)]


def _search_pairs(
    session: Session, reference: Reference, pixels: Pixels, images: npt.NDArray[np.int64],
    shifts: npt.NDArray[np.int8],
) -> Confirmed:  # fmt: skip
    """Search ``pixels[images[i]]`` moved by ``shifts[i]``, for every pair at once."""
    moved = np.empty((len(images), *pixels.shape[1:]), dtype=pixels.dtype)
    codes = shifts[:, 0].astype(np.int64) * 16 + shifts[:, 1]
    for code in np.unique(codes):
        at = np.flatnonzero(codes == code)
        dy, dx = int(shifts[at[0], 0]), int(shifts[at[0], 1])
        moved[at] = shifted(pixels[images[at]], dy, dx)
    return search_and_confirm(session, reference, moved, exact=False)
