"""Match a dataset's images to a reference: by digest, then by signature and pixels.

1. *Exact*: the image's digest (from ``images.sha256``) is a reference image's.
   No pixels are read for these.
2. *Lossy*: the other images are read in blocks; their signatures' nearest
   reference signatures are the candidates (:func:`catalog.identity.search.nearest`),
   confirmed by pixels when the reference's pixels are in the catalog, by
   signature otherwise (:mod:`catalog.identity.confirm`). Images left unconfirmed
   are tried again moved by whole-pixel shifts, those their centre of mass
   suggests first (:mod:`catalog.identity.shifts`).
3. Everything else is *none*.

The audit bounds the second step (``sample=``): when a dataset holds many images
no digest matches, a random sample of them is searched first, and the rest only
when the sample says the dataset is derived from the reference
(:mod:`catalog.identity.sampling`); and it reads back the matches an earlier
audit kept for the same images (``reuse=True``, :mod:`catalog.identity.kept`).

Tolerances were measured on all 70,000 MNIST digits: JPEG quality 75 after a
min/max stretch leaves at most ~11 levels of blurred difference, while the two
closest distinct MNIST digits differ by 17 (signatures: 0.033 against 0.040).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from catalog.db.engine import session_scope
from catalog.identity import result as res
from catalog.identity.columns import ImageColumns, dataset_name, image_columns
from catalog.identity.confirm import BLOCK, Columns, Reference, pixels_by_id
from catalog.identity.kept import Keeper
from catalog.identity.reference import resolve_reference
from catalog.identity.registry import SHIPPED, load_shipped
from catalog.identity.sampling import derived, sample_of, sampled_note
from catalog.identity.shifts import match_block
from catalog.select.filters import dataset_id

Progress = Callable[[int], None]


def identify(
    source: Session | Engine,
    dataset: str | None = None,
    *,
    against: str = "mnist",
    progress: Progress | None = None,
) -> res.IdentityResult:
    """Say which reference image each image of ``dataset`` is.

    Parameters
    ----------
    source
        A :class:`sqlalchemy.orm.Session` on a catalog, or its :class:`sqlalchemy.Engine`
        (a session is opened for the call). ``Catalog.identify`` is the same for a catalog.
    dataset
        The dataset to identify; None for the catalog's only dataset.
    against
        ``"mnist"`` (the shipped registry; pixels confirm lossy matches when the
        catalog also holds the genuine files) or the name of a dataset in the catalog.
    progress
        Called with the number of images done, as work advances.

    Returns
    -------
    IdentityResult
        Per image: kind, canonical split/index/label, error; plus ``summary()``.

    Raises
    ------
    DatasetNotFoundError
        ``dataset`` or ``against`` is not in the catalog.
    """
    if isinstance(source, Session):
        return identify_session(source, dataset, against, progress)
    with session_scope(source) as session:
        return identify_session(session, dataset, against, progress)


def identify_session(
    session: Session,
    dataset: str | None,
    against: str = "mnist",
    progress: Progress | None = None,
    *,
    sample: int | None = None,
    reuse: bool = False,
    images: ImageColumns | None = None,
) -> res.IdentityResult:
    """Identify every image of ``dataset`` against ``against`` (see :func:`identify`).

    With ``sample``, when more than ``sample`` images match no digest, a random
    ``sample`` of them is searched first, and the rest only if enough of those are
    lossy copies (:func:`catalog.identity.sampling.derived`); otherwise the result
    says it sampled (``result.sampled``). With ``reuse``, matches kept by an earlier
    run for the same images are read back, and new ones kept, when the catalog allows
    the write (:mod:`catalog.identity.kept`). ``images`` are the dataset's images as
    the caller read them already (an audit), instead of reading them again.
    """
    ds = dataset_id(session, dataset)
    images = images or image_columns(session, ds)
    name = dataset if dataset is not None else dataset_name(session, ds)
    reference, cols, exact = _match_exact(session, ds, images, against)
    _advance(progress, int(exact.sum()))
    registry = reference.registry
    same_shape = (images.heights == registry.shape[0]) & (images.widths == registry.shape[1])
    pending = np.flatnonzero(~exact & same_shape)
    keeper = Keeper.of(session, reference, ds) if reuse else None
    reused = 0
    if keeper is not None:
        known = keeper.read(images.ids[pending], pending, cols)
        reused = int(known.sum())
        _advance(progress, reused)
        pending = pending[~known]
    search = _Search(session, reference, images.ids, cols, progress)
    searched, sampled = search.run(pending, sample)
    if keeper is not None:
        keeper.write(images.ids[searched.pending], searched.pending, cols)
    _advance(progress, int((~exact & ~same_shape).sum()))
    return _result(name, images, reference, cols, searched, sampled, reused)


def _advance(progress: Progress | None, done: int) -> None:
    if progress is not None:
        progress(done)


def _match_exact(
    session: Session, ds: int, images: ImageColumns, against: str
) -> tuple[Reference, Columns, npt.NDArray[np.bool_]]:
    """The reference, the result columns with digest matches filled in, and which
    images matched by digest."""
    shipped = against in SHIPPED
    # A shipped registry is known before its pixels are: its lookup also finds them.
    at = load_shipped(against).lookup(images.digests) if shipped else None
    looked_up = (ds, images.ids, at) if at is not None else None
    reference = resolve_reference(session, against, looked_up)
    if at is None:
        at = reference.registry.lookup(images.digests)
    cols = Columns.empty(len(images.ids))
    exact = at >= 0
    cols.kinds[exact], cols.confirmed[exact], cols.positions[exact] = (
        res.EXACT,
        res.BY_DIGEST,
        at[exact],
    )
    cols.errors[exact], cols.gains[exact] = 0.0, 1.0
    cols.shifts[exact] = 0
    return reference, cols, exact


@dataclass(frozen=True)
class _Searched:
    """Which images were searched for a lossy match: ``pending`` in this run, and
    ``mask`` over every image (False: left out by a sample that found no copies)."""

    pending: npt.NDArray[np.int64]
    mask: npt.NDArray[np.bool_] | None


@dataclass
class _Search:
    """The lossy search over images without a digest match, in blocks of pixels."""

    session: Session
    reference: Reference
    ids: npt.NDArray[np.int64]
    cols: Columns
    progress: Progress | None

    def block(self, positions: npt.NDArray[np.int64]) -> None:
        shape = self.reference.registry.shape
        for start in range(0, len(positions), BLOCK):
            part = positions[start : start + BLOCK]
            pixels = pixels_by_id(self.session, self.ids[part], shape)
            match_block(self.session, self.reference, part, pixels, self.cols)
            _advance(self.progress, len(part))

    def run(
        self, pending: npt.NDArray[np.int64], sample: int | None
    ) -> tuple[_Searched, res.Sampled | None]:
        """Search ``pending``; with ``sample``, a sample first and the rest only when
        the sample finds the dataset derived from the reference."""
        if sample is None or len(pending) <= sample:
            self.block(pending)
            return _Searched(pending, None), None
        chosen = sample_of(pending, sample)
        self.block(chosen)
        hits = int((self.cols.kinds[chosen] == res.LOSSY).sum())
        rest = np.setdiff1d(pending, chosen, assume_unique=True)
        if derived(hits, len(chosen)):
            self.block(rest)
            return _Searched(pending, None), None
        mask = np.ones(len(self.ids), dtype=bool)
        mask[rest] = False
        _advance(self.progress, len(rest))
        return _Searched(chosen, mask), res.Sampled(len(chosen), len(pending), hits)


def _result(
    name: str,
    images: ImageColumns,
    reference: Reference,
    cols: Columns,
    searched: _Searched,
    sampled: res.Sampled | None,
    reused: int,
) -> res.IdentityResult:
    """The identity result from the filled-in columns, with its notes."""
    registry = reference.registry
    matched = cols.positions >= 0
    names = np.asarray(("", *registry.split_names), dtype=np.str_)
    canonical_splits = names[np.where(matched, registry.split_codes[cols.positions] + 1, 0)]
    notes = [] if sampled is None else [sampled_note(sampled, registry.name)]
    confirmed = cols.confirmed[cols.kinds == res.LOSSY]
    by_signature = int((confirmed == res.BY_SIGNATURE).sum())
    if by_signature:
        notes.append(
            f"{by_signature:,} lossy matches were confirmed by signature only: "
            f"the catalog holds no genuine {registry.name} pixels to compare"
        )
    return res.IdentityResult(
        dataset=name,
        reference=registry.name,
        image_ids=images.ids,
        splits=images.splits,
        indices=images.indices,
        labels=images.labels,
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
        sampled=sampled,
        searched=searched.mask,
        reused=reused,
        searched_now=len(searched.pending),
    )
