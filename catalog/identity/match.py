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
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image, Source
from catalog.identity import result as res
from catalog.identity.confirm import (
    BLOCK,
    PIXEL_TOLERANCE,
    SIGNATURE_MARGIN,
    SIGNATURE_TOLERANCE,
    Columns,
    Reference,
    pixels_by_id,
)
from catalog.identity.registry import (
    LABEL,
    SHIPPED,
    Registry,
    load_shipped,
    registry_from_dataset,
)
from catalog.identity.sampling import derived, sample_of, sampled_note
from catalog.identity.shifts import match_block
from catalog.identity.signature import digests_from_hex
from catalog.select.filters import POSITION, dataset_id, with_state

__all__ = [
    "PIXEL_TOLERANCE",
    "SIGNATURE_MARGIN",
    "SIGNATURE_TOLERANCE",
    "ImageColumns",
    "Reference",
    "identify_session",
    "resolve_reference",
]


def resolve_reference(
    session: Session,
    against: str,
    looked_up: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> Reference:
    """The registry for ``against`` and where its pixels are.

    A shipped name (``mnist``) uses the shipped registry; its pixels are those of
    a dataset in the catalog ingested from the genuine files, if any (matched
    image by image on digests). Any other name is a dataset of the catalog.
    ``looked_up`` is ``(dataset id, image ids, registry rows)`` of a dataset whose
    digests the caller looked up in the shipped registry already, not read again.
    """
    if against in SHIPPED:
        registry = load_shipped(against)
        return Reference.of(registry, _genuine_ids(session, registry, looked_up))
    registry = registry_from_dataset(session, against)
    assert registry.image_ids is not None
    return Reference.of(registry, registry.image_ids)


def _genuine_ids(
    session: Session,
    registry: Registry,
    looked_up: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> npt.NDArray[np.int64]:
    ids = np.full(len(registry), -1, dtype=np.int64)
    datasets = session.scalars(
        select(Source.dataset_id).where(Source.genuine.like(f"{registry.name}/%")).distinct()
    ).all()
    for ds in datasets:
        if looked_up is not None and looked_up[0] == ds:  # its digests are looked up already
            known = looked_up[2] >= 0
            ids[looked_up[2][known]] = looked_up[1][known]
            continue
        rows = (
            session.connection()
            .execute(select(Image.id, Image.sha256).where(Image.dataset_id == ds))
            .all()
        )
        if not rows:
            continue
        image_ids, digests = zip(*rows, strict=True)  # columns, not per-row attribute access
        at = registry.lookup(digests_from_hex(list(digests)))
        found = at >= 0
        ids[at[found]] = np.asarray(image_ids, dtype=np.int64)[found]
    return ids


def identify_session(
    session: Session,
    dataset: str | None,
    against: str = "mnist",
    progress: Callable[[int], None] | None = None,
    *,
    sample: int | None = None,
    reuse: bool = False,
    images: ImageColumns | None = None,
) -> res.IdentityResult:
    """Identify every image of ``dataset`` against ``against`` (see :func:`catalog.identity.identify`).

    With ``sample``, when more than ``sample`` images match no digest, a random
    ``sample`` of them is searched first, and the rest only if enough of those are
    lossy copies (:func:`catalog.identity.sampling.derived`); otherwise the result
    says it sampled (``result.sampled``). With ``reuse``, matches kept by an earlier
    run for the same images are read back, and new ones kept, when the catalog allows
    the write (:mod:`catalog.identity.kept`). ``images`` are the dataset's images as
    the caller read them already (an audit), instead of reading them again.
    """
    ds = dataset_id(session, dataset)
    images = images or _image_columns(session, ds)
    ids, splits, indices, labels = images.ids, images.splits, images.indices, images.labels
    digests, heights, widths = images.digests, images.heights, images.widths
    n = len(ids)
    name = dataset if dataset is not None else _name(session, ds)
    at = np.full(n, -1, np.int64)
    if against in SHIPPED:  # the registry is known before its pixels are
        at = load_shipped(against).lookup(digests)
    reference = resolve_reference(session, against, (ds, ids, at) if against in SHIPPED else None)
    registry = reference.registry
    cols = Columns.empty(n)
    if against not in SHIPPED:
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
    searched = np.ones(n, dtype=bool)
    keeper = None
    if reuse:
        from catalog.identity.kept import Keeper

        keeper = Keeper.of(session, reference, ds)
    reused = 0
    if keeper is not None:
        known = keeper.read(ids[pending], pending, cols)
        reused = int(known.sum())
        if progress is not None:
            progress(reused)
        pending = pending[~known]

    def search(positions: npt.NDArray[np.int64]) -> None:
        for start in range(0, len(positions), BLOCK):
            part = positions[start : start + BLOCK]
            pixels = pixels_by_id(session, ids[part], registry.shape)
            match_block(session, reference, part, pixels, cols)
            if progress is not None:
                progress(len(part))

    sampled = None
    if sample is not None and len(pending) > sample:
        chosen = sample_of(pending, sample)
        search(chosen)
        hits = int((cols.kinds[chosen] == res.LOSSY).sum())
        rest = np.setdiff1d(pending, chosen, assume_unique=True)
        if derived(hits, len(chosen)):
            search(rest)
        else:
            sampled = res.Sampled(len(chosen), len(pending), hits)
            searched[rest] = False
            pending = chosen
            if progress is not None:
                progress(len(rest))
    else:
        search(pending)
    if keeper is not None:
        keeper.write(ids[pending], pending, cols)
    searched_now = len(pending)
    if progress is not None:
        progress(int((~exact & ~same_shape).sum()))
    matched = cols.positions >= 0
    names = np.asarray(("", *registry.split_names), dtype=np.str_)
    canonical_splits = names[np.where(matched, registry.split_codes[cols.positions] + 1, 0)]
    notes = [] if sampled is None else [sampled_note(sampled, registry.name)]
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
        sampled=sampled,
        searched=None if sampled is None else searched,
        reused=reused,
        searched_now=searched_now,
    )


@dataclass(frozen=True)
class ImageColumns:
    """What identify reads of each image of a dataset, in (split, index) order."""

    ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]  # current labels (decisions applied), UNLABELED for none
    digests: npt.NDArray[np.uint64]  # the first 64 bits of each sha256
    heights: npt.NDArray[np.int64]
    widths: npt.NDArray[np.int64]


def _image_columns(session: Session, ds: int) -> ImageColumns:
    rows = session.connection().execute(
        with_state(select(Image.id, Image.split, POSITION, LABEL, Image.sha256, Image.height,
                          Image.width))
        .where(Image.dataset_id == ds)
        .order_by(Image.split, Image.index)
    ).all()  # fmt: skip
    n = len(rows)
    # One transposition of the rows into columns (attribute access per row costs more).
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    return ImageColumns(
        np.asarray(columns[0], dtype=np.int64).reshape(n),
        np.asarray(columns[1], dtype=np.str_).reshape(n),
        np.asarray(columns[2], dtype=np.int64).reshape(n),
        np.asarray(columns[3], dtype=np.int64).reshape(n),
        digests_from_hex(list(columns[4])),
        np.asarray(columns[5], dtype=np.int64).reshape(n),
        np.asarray(columns[6], dtype=np.int64).reshape(n),
    )


def _name(session: Session, ds: int) -> str:
    from catalog.db.models.images import Dataset

    return str(session.scalar(select(Dataset.name).where(Dataset.id == ds)))
