"""Match a dataset's images to a reference: by digest, then by signature and pixels.

1. *Exact*: the image's digest (from ``images.sha256``) is a reference image's.
   No pixels are read for these.
2. *Lossy*: the other images are read in blocks; their signatures' nearest
   reference signatures are the candidates (:func:`catalog.identity.search.nearest`).
   A candidate is confirmed by pixels when the reference's pixels are in the
   catalog: after fitting ``image ~ gain * candidate + offset`` (which undoes a
   per-image contrast stretch), the 3x3-blurred difference must stay within
   :data:`PIXEL_TOLERANCE` levels and be clearly smaller than the runner-up's.
   Without the reference's pixels (the shipped registry alone), the signature
   distance must be within :data:`SIGNATURE_TOLERANCE` and at most
   :data:`SIGNATURE_MARGIN` of the runner-up's. Images left unconfirmed are
   tried again moved by the few whole-pixel shifts their centre of mass
   suggests (at most :data:`~catalog.identity.signature.MAX_SHIFT`).
3. Everything else is *none*.

Tolerances were measured on all 70,000 MNIST digits: JPEG quality 75 after a
min/max stretch leaves at most ~11 levels of blurred difference, while the two
closest distinct MNIST digits differ by 17 (signatures: 0.033 against 0.040).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db import Image, Source
from catalog.identity import result as res
from catalog.identity.registry import (
    LABEL,
    SHIPPED,
    Registry,
    load_shipped,
    registry_from_dataset,
)
from catalog.identity.search import nearest
from catalog.identity.signature import (
    MAX_SHIFT,
    Pixels,
    digests_from_hex,
    fit_pairs,
    shift_order,
    shifted,
)
from catalog.query import POSITION, dataset_id, with_state

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
#: Runners-up farther than this (signature distance) are not read: a signature is a
#: projection of the unit-length image, so such a runner-up differs from the image
#: by at least this much, several times what a lossy copy differs by.
RUNNER_UP_RADIUS = 0.2
#: Images read per block.
BLOCK = 4096


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
        centre = _centroid(mean[None])[0]
        return cls(registry, image_ids, registry.search_signatures(), (centre[0], centre[1]))


def resolve_reference(session: Session, against: str) -> Reference:
    """The registry for ``against`` and where its pixels are.

    A shipped name (``mnist``) uses the shipped registry; its pixels are those of
    a dataset in the catalog ingested from the genuine files, if any (matched
    image by image on digests). Any other name is a dataset of the catalog.
    """
    if against in SHIPPED:
        registry = load_shipped(against)
        return Reference.of(registry, _genuine_ids(session, registry))
    registry = registry_from_dataset(session, against)
    assert registry.image_ids is not None
    return Reference.of(registry, registry.image_ids)


def _genuine_ids(session: Session, registry: Registry) -> npt.NDArray[np.int64]:
    ids = np.full(len(registry), -1, dtype=np.int64)
    datasets = session.scalars(
        select(Source.dataset_id).where(Source.genuine.like(f"{registry.name}/%")).distinct()
    ).all()
    for ds in datasets:
        rows = session.execute(
            select(Image.id, Image.split, Image.index, Image.sha256).where(Image.dataset_id == ds)
        ).all()
        if not rows:
            continue
        at = registry.lookup(digests_from_hex([r.sha256 for r in rows]))
        found = at >= 0
        ids[at[found]] = np.fromiter((r.id for r in rows), np.int64, len(rows))[found]
    return ids


def _centroid(pixels: npt.NDArray[np.floating] | Pixels) -> npt.NDArray[np.float64]:
    """Centre of mass (row, column) of each image, weighting by level above its minimum."""
    f = pixels.astype(np.float64)
    f = f - f.reshape(len(f), -1).min(axis=1)[:, None, None]
    mass = np.maximum(f.sum(axis=(1, 2)), 1e-9)
    rows = (f.sum(axis=2) * np.arange(f.shape[1])).sum(axis=1) / mass
    cols = (f.sum(axis=1) * np.arange(f.shape[2])).sum(axis=1) / mass
    return np.stack([rows, cols], axis=1)


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


def identify_session(
    session: Session,
    dataset: str | None,
    against: str = "mnist",
    progress: Callable[[int], None] | None = None,
) -> res.IdentityResult:
    """Identify every image of ``dataset`` against ``against`` (see :func:`catalog.identity.identify`)."""
    ds = dataset_id(session, dataset)
    rows = session.connection().execute(
        with_state(select(Image.id, Image.split, POSITION, LABEL, Image.sha256, Image.height,
                          Image.width))
        .where(Image.dataset_id == ds)
        .order_by(Image.split, Image.index)
    ).all()  # fmt: skip
    n = len(rows)
    # One transposition of the rows into columns (attribute access per row costs more).
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    ids = np.asarray(columns[0], dtype=np.int64).reshape(n)
    splits = np.asarray(columns[1], dtype=np.str_).reshape(n)
    indices = np.asarray(columns[2], dtype=np.int64).reshape(n)
    labels = np.asarray(columns[3], dtype=np.int64).reshape(n)
    digests = digests_from_hex(list(columns[4]))
    heights = np.asarray(columns[5], dtype=np.int64).reshape(n)
    widths = np.asarray(columns[6], dtype=np.int64).reshape(n)
    del rows, columns
    name = dataset if dataset is not None else _name(session, ds)
    reference = resolve_reference(session, against)
    registry = reference.registry
    cols = Columns.empty(n)
    at = registry.lookup(digests)
    exact = at >= 0
    cols.kinds[exact], cols.confirmed[exact], cols.positions[exact] = (
        res.EXACT,
        res.BY_DIGEST,
        at[exact],
    )
    cols.errors[exact], cols.gains[exact] = 0.0, 1.0
    cols.shifts[exact] = 0
    if progress is not None:
        progress(int(exact.sum()))
    same_shape = (heights == registry.shape[0]) & (widths == registry.shape[1])
    pending = np.flatnonzero(~exact & same_shape)
    for start in range(0, len(pending), BLOCK):
        part = pending[start : start + BLOCK]
        pixels = _pixels(session, ids[part], registry.shape)
        _match_block(session, reference, part, pixels, cols)
        if progress is not None:
            progress(len(part))
    if progress is not None:
        progress(int((~exact & ~same_shape).sum()))
    matched = cols.positions >= 0
    names = np.asarray(("", *registry.split_names), dtype=np.str_)
    canonical_splits = names[np.where(matched, registry.split_codes[cols.positions] + 1, 0)]
    notes = []
    confirmed = cols.confirmed[cols.kinds == res.LOSSY]
    if (confirmed == res.BY_SIGNATURE).any():
        notes.append(
            f"{int((confirmed == res.BY_SIGNATURE).sum()):,} lossy matches were confirmed by "
            f"signature only: the catalog holds no genuine {registry.name} pixels to compare"
        )
    return res.IdentityResult(
        dataset=name,
        reference=registry.name,
        image_ids=ids,
        splits=splits,
        indices=indices,
        labels=labels,
        kinds=cols.kinds,
        confirmed_by=cols.confirmed,
        canonical_splits=canonical_splits,
        canonical_indices=np.where(matched, registry.indices[cols.positions], -1),
        canonical_labels=np.where(matched, registry.labels[cols.positions], -1),
        max_errors=cols.errors,
        gains=cols.gains,
        shifts=cols.shifts,
        distances=cols.distances,
        stretched=cols.stretched,
        notes=notes,
    )


def _name(session: Session, ds: int) -> str:
    from catalog.db import Dataset

    return str(session.scalar(select(Dataset.name).where(Dataset.id == ds)))


def _pixels(session: Session, ids: npt.NDArray[np.int64], shape: tuple[int, int]) -> Pixels:
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


def _match_block(
    session: Session, reference: Reference, rows: npt.NDArray[np.int64], pixels: Pixels,
    cols: Columns,
) -> None:  # fmt: skip
    """Match one block of images, unshifted first, then moved by the likely shifts."""
    todo = np.arange(len(rows))
    todo = todo[~_try_shift(session, reference, rows, pixels, todo, (0, 0), cols)]
    if not len(todo):
        return
    centre = np.asarray(reference.centre)
    offsets = centre - _centroid(pixels[todo])
    likely = _likely_shifts(offsets)
    # First the shifts each image's centre of mass suggests (right when the
    # reference is centred by mass, as MNIST is), then every other one.
    rounds = [(s, True) for s in likely] + [(s, False) for s in shift_order()]
    for shift, suggested in rounds:
        # Each image tries each shift once: its suggested ones, then the rest.
        wants = np.array([(shift in _around(o)) == suggested for o in offsets], dtype=bool)
        if not wants.any():
            continue
        done = _try_shift(session, reference, rows, pixels, todo[wants], shift, cols)
        keep = np.ones(len(todo), dtype=bool)
        keep[np.flatnonzero(wants)[done]] = False
        todo, offsets = todo[keep], offsets[keep]
        if not len(todo):
            return


def _around(offset: npt.NDArray[np.float64]) -> set[tuple[int, int]]:
    """The whole-pixel shifts next to a fractional one, within MAX_SHIFT, but (0, 0)."""
    ys = {int(np.floor(offset[0])), int(np.ceil(offset[0]))}
    xs = {int(np.floor(offset[1])), int(np.ceil(offset[1]))}
    return {
        (y, x) for y in ys for x in xs
        if (y, x) != (0, 0) and abs(y) <= MAX_SHIFT and abs(x) <= MAX_SHIFT
    }  # fmt: skip


def _likely_shifts(offsets: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """Shifts next to any image's centre-of-mass offset, smallest first."""
    seen: set[tuple[int, int]] = set()
    for offset in offsets:
        seen |= _around(offset)
    return sorted(seen, key=lambda s: (s[0] ** 2 + s[1] ** 2, s))


def _try_shift(
    session: Session, reference: Reference, rows: npt.NDArray[np.int64], pixels: Pixels,
    which: npt.NDArray[np.int64], shift: tuple[int, int], cols: Columns,
) -> npt.NDArray[np.bool_]:  # fmt: skip
    """Search and confirm ``pixels[which]`` moved by ``shift``; record matches; return which matched.

    The search is approximate; unshifted images it leaves unconfirmed are searched
    again exactly (shifted ones are not: a foreign image would cost 24 exact searches).
    """
    ok = _search_and_confirm(session, reference, rows, pixels, which, shift, cols, exact=False)
    if shift == (0, 0) and not ok.all():
        again = np.flatnonzero(~ok)
        ok[again] = _search_and_confirm(
            session, reference, rows, pixels, which[again], shift, cols, exact=True
        )
    return ok


def _search_and_confirm(
    session: Session, reference: Reference, rows: npt.NDArray[np.int64], pixels: Pixels,
    which: npt.NDArray[np.int64], shift: tuple[int, int], cols: Columns, *, exact: bool,
) -> npt.NDArray[np.bool_]:  # fmt: skip
    registry = reference.registry
    moved = shifted(pixels[which], *shift) if shift != (0, 0) else pixels[which]
    # The image moved by ``shift`` lines up with the reference; the image itself is moved by -shift.
    query = registry.projection.signatures(moved)
    distances, candidates = nearest(reference.signatures, query, CANDIDATES, exact=exact)
    distances /= np.float32(registry.projection.scale)
    ok = np.zeros(len(which), dtype=bool)
    best = candidates[:, 0].copy()
    by_pixels = (reference.image_ids[np.maximum(candidates[:, 0], 0)] >= 0) & (
        candidates[:, 0] >= 0
    )
    fit_error = np.full(len(which), np.nan, dtype=np.float32)
    gains = np.full(len(which), np.nan, dtype=np.float32)
    stretched = np.zeros(len(which), dtype=bool)
    if by_pixels.any():
        sub = np.flatnonzero(by_pixels)
        near = (distances[sub] <= RUNNER_UP_RADIUS) | (np.arange(CANDIDATES) == 0)
        conf, pick, err, gain, stretch = _confirm_by_pixels(
            session, reference, moved[sub], np.where(near, candidates[sub], -1)
        )
        ok[sub], best[sub], fit_error[sub], gains[sub], stretched[sub] = (
            conf,
            pick,
            err,
            gain,
            stretch,
        )
    sig = np.flatnonzero(~by_pixels)
    second = np.where(np.isfinite(distances[:, 1]), distances[:, 1], np.inf)
    ok[sig] = (distances[sig, 0] <= SIGNATURE_TOLERANCE) & (
        distances[sig, 0] <= SIGNATURE_MARGIN * second[sig]
    )
    hit = which[ok]
    target = rows[hit]
    cols.kinds[target] = res.LOSSY
    cols.confirmed[target] = np.where(by_pixels[ok], res.BY_PIXELS, res.BY_SIGNATURE)
    cols.positions[target] = best[ok]
    cols.errors[target] = fit_error[ok]
    cols.gains[target] = gains[ok]
    cols.shifts[target] = (-shift[0], -shift[1])
    cols.distances[target] = distances[ok, 0]
    cols.stretched[target] = stretched[ok]
    return ok


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
        ref_pixels = _pixels(session, ids[rowsj, j], reference.registry.shape)
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
