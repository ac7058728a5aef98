"""Search a block of images' signatures and confirm the candidates: by pixels or by signature.

:func:`search_and_confirm` takes images already moved into place (unshifted, or shifted
by :mod:`catalog.identity.shifts`) and says, per image, whether its nearest reference
image is the one it is a copy of:

- by pixels, when the reference's pixels are in the catalog: after fitting
  ``image ~ gain * candidate + offset`` (which undoes a per-image contrast stretch),
  the 3x3-blurred difference must stay within :data:`PIXEL_TOLERANCE` levels and be
  clearly smaller than the runner-up's;
- by signature otherwise: the distance must be within :data:`SIGNATURE_TOLERANCE`
  and at most :data:`SIGNATURE_MARGIN` of the runner-up's.

Candidates farther than :data:`RADIUS` are not read at all: a signature is a
projection of the unit-length image, so such a candidate differs from the image by at
least that much, several times what a lossy copy differs by. For a dataset that is
not a copy, this leaves nearly every image without a pixel read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.identity import result as res
from catalog.identity.registry import Registry
from catalog.identity.search import nearest
from catalog.identity.signature import Pixels, fit_pairs

#: Most blurred difference (levels) a confirmed pixel match may have.
PIXEL_TOLERANCE = 14.0
#: Blurred RMS of the match over the runner-up's, at most.
PIXEL_MARGIN = 0.8
#: Most signature distance (unit-length images) a signature-confirmed match may have.
SIGNATURE_TOLERANCE = 0.05
#: Signature distance of the match over the runner-up's, at most.
SIGNATURE_MARGIN = 0.6
#: Candidates examined per image.
CANDIDATES = 3
#: Candidates farther than this (signature distance) are not read (see the module's text).
RADIUS = 0.2
#: Images read per block.
BLOCK = 4096


def centroids(pixels: npt.NDArray[np.floating] | Pixels) -> npt.NDArray[np.float64]:
    """Centre of mass (row, column) of each image, weighting by level above its minimum."""
    f = pixels.astype(np.float64)
    f = f - f.reshape(len(f), -1).min(axis=1)[:, None, None]
    mass = np.maximum(f.sum(axis=(1, 2)), 1e-9)
    rows = (f.sum(axis=2) * np.arange(f.shape[1])).sum(axis=1) / mass
    cols = (f.sum(axis=1) * np.arange(f.shape[2])).sum(axis=1) / mass
    return np.stack([rows, cols], axis=1)


@dataclass
class Reference:
    """A registry, plus where its pixels are in the catalog (-1 where they are not)."""

    registry: Registry
    image_ids: npt.NDArray[np.int64]
    signatures: npt.NDArray[np.float32]
    centre: tuple[float, float]

    @classmethod
    def of(cls, registry: Registry, image_ids: npt.NDArray[np.int64]) -> Reference:
        mean = np.maximum(registry.projection.mean.reshape(registry.shape), 0)
        centre = centroids(mean[None])[0]
        return cls(registry, image_ids, registry.search_signatures(), (centre[0], centre[1]))


@dataclass
class Columns:
    """The growing result columns for the images still being matched."""

    kinds: npt.NDArray[np.uint8]
    confirmed: npt.NDArray[np.uint8]
    positions: npt.NDArray[np.int64]  # registry position, -1 when none
    errors: npt.NDArray[np.float32]
    gains: npt.NDArray[np.float32]
    shifts: npt.NDArray[np.int8]
    distances: npt.NDArray[np.float32]
    stretched: npt.NDArray[np.bool_]

    @classmethod
    def empty(cls, n: int) -> Columns:
        nan = np.full(n, np.nan, dtype=np.float32)
        return cls(np.zeros(n, np.uint8), np.zeros(n, np.uint8), np.full(n, -1, np.int64),
                   nan.copy(), nan.copy(), np.zeros((n, 2), np.int8), nan.copy(),
                   np.zeros(n, bool))  # fmt: skip


@dataclass
class Confirmed:
    """Per searched image: whether it matched, and the match's measures."""

    ok: npt.NDArray[np.bool_]
    best: npt.NDArray[np.int64]
    by_pixels: npt.NDArray[np.bool_]
    errors: npt.NDArray[np.float32]
    gains: npt.NDArray[np.float32]
    stretched: npt.NDArray[np.bool_]
    distances: npt.NDArray[np.float32]

    def take(self, rows: npt.NDArray[np.int64]) -> Confirmed:
        return Confirmed(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @classmethod
    def concatenate(cls, parts: list[Confirmed]) -> Confirmed:
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in cls.__dataclass_fields__))  # fmt: skip

    def record(
        self, cols: Columns, targets: npt.NDArray[np.int64], shifts: npt.NDArray[np.int8]
    ) -> None:
        """Write the matched ones into ``cols`` at ``targets`` (the image moved by ``-shifts``)."""
        ok = self.ok
        hit = targets[ok]
        cols.kinds[hit] = res.LOSSY
        cols.confirmed[hit] = np.where(self.by_pixels[ok], res.BY_PIXELS, res.BY_SIGNATURE)
        cols.positions[hit] = self.best[ok]
        cols.errors[hit] = self.errors[ok]
        cols.gains[hit] = self.gains[ok]
        cols.shifts[hit] = -shifts[ok]
        cols.distances[hit] = self.distances[ok]
        cols.stretched[hit] = self.stretched[ok]


def pixels_by_id(session: Session, ids: npt.NDArray[np.int64], shape: tuple[int, int]) -> Pixels:
    """Pixels of catalog images ``ids`` (in that order)."""
    unique = np.unique(ids)
    by_id: dict[int, bytes] = {}
    for start in range(0, len(unique), BLOCK):
        chunk = unique[start : start + BLOCK].tolist()
        for image_id, pixels in session.execute(
            select(Image.id, Image.pixels).where(Image.id.in_(chunk))
        ):
            by_id[image_id] = pixels
    data = b"".join(by_id[i] for i in ids.tolist())
    return np.frombuffer(data, dtype=np.uint8).reshape(len(ids), *shape)


def search_and_confirm(
    session: Session, reference: Reference, moved: Pixels, *, exact: bool
) -> Confirmed:
    """Search the signatures of ``moved`` and confirm each image's best candidate."""
    registry = reference.registry
    n = len(moved)
    query = registry.projection.signatures(moved)
    distances, candidates = nearest(reference.signatures, query, CANDIDATES, exact=exact)
    distances /= np.float32(registry.projection.scale)
    near = distances <= RADIUS
    candidates = np.where(near, candidates, -1)
    ok = np.zeros(n, dtype=bool)
    best = candidates[:, 0].copy()
    first = np.maximum(candidates[:, 0], 0)
    by_pixels = (reference.image_ids[first] >= 0) & (candidates[:, 0] >= 0)
    fit_error = np.full(n, np.nan, dtype=np.float32)
    gains = np.full(n, np.nan, dtype=np.float32)
    stretched = np.zeros(n, dtype=bool)
    if by_pixels.any():
        sub = np.flatnonzero(by_pixels)
        conf, pick, err, gain, stretch = _confirm_by_pixels(
            session, reference, moved[sub], candidates[sub]
        )
        ok[sub], best[sub], fit_error[sub], gains[sub], stretched[sub] = (
            conf, pick, err, gain, stretch,
        )  # fmt: skip
    sig = np.flatnonzero(~by_pixels & near[:, 0])
    second = np.where(np.isfinite(distances[:, 1]), distances[:, 1], np.inf)
    ok[sig] = (distances[sig, 0] <= SIGNATURE_TOLERANCE) & (
        distances[sig, 0] <= SIGNATURE_MARGIN * second[sig]
    )
    return Confirmed(ok, best, by_pixels, fit_error, gains, stretched, distances[:, 0])


def _confirm_by_pixels(
    session: Session, reference: Reference, query: Pixels, candidates: npt.NDArray[np.int64]
) -> tuple[
    npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float32],
    npt.NDArray[np.float32], npt.NDArray[np.bool_],
]:  # fmt: skip
    """Fit each image to each candidate; keep the best fit if it passes both tests."""
    n, k = candidates.shape
    ids = reference.image_ids[np.maximum(candidates, 0)]
    usable = (candidates >= 0) & (ids >= 0)
    rms = np.full((n, k), np.inf, dtype=np.float32)
    blurred_max = np.full((n, k), np.inf, dtype=np.float32)
    max_error = np.full((n, k), np.nan, dtype=np.float32)
    gain = np.full((n, k), np.nan, dtype=np.float32)
    stretched = np.zeros((n, k), dtype=bool)
    for j in range(k):
        rowsj = np.flatnonzero(usable[:, j])
        if not len(rowsj):
            continue
        ref_pixels = pixels_by_id(session, ids[rowsj, j], reference.registry.shape)
        fit = fit_pairs(query[rowsj], ref_pixels)
        rms[rowsj, j], blurred_max[rowsj, j] = fit.blurred_rms, fit.blurred_max
        max_error[rowsj, j], gain[rowsj, j] = fit.max_error, fit.gain
        stretched[rowsj, j] = fit.stretched
    order = np.argsort(rms, axis=1, kind="stable")
    first = order[:, 0]
    at = np.arange(n)
    best_rms = rms[at, first]
    # The runner-up is the best other candidate with different pixels.
    digests = reference.registry.digests[np.maximum(candidates, 0)]
    other = np.where(digests == digests[at, first][:, None], np.inf, rms)
    other[at, first] = np.inf
    runner_up = other.min(axis=1)
    ok = (blurred_max[at, first] <= PIXEL_TOLERANCE) & (best_rms <= PIXEL_MARGIN * runner_up)
    ok &= np.isfinite(best_rms)
    return ok, candidates[at, first], max_error[at, first], gain[at, first], stretched[at, first]
