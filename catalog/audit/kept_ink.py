"""Ink measures kept per image, so the next audit measures only the images it has not seen.

An image's ink measures (:class:`~catalog.audit.features.InkMeasures`) depend on its pixels
alone, and pixels never change, so they are kept in ``image_measures`` (kind
:data:`KIND`) the first time an audit measures them. :func:`ink_of` reads back what is
kept, measures the rest from pixels streamed in blocks, and keeps those when the catalog
allows the write; it says how many it measured and how many it reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.audit.features import InkMeasures, ink_measures
from catalog.facts.measures import read_measures, write_measures
from catalog.select.filters import dataset_id

#: ``blocks(positions)``: ``(positions, pixels)`` blocks of the images at ``positions``
#: (all, in order, when None), as :meth:`catalog.audit.images.DatasetImages.blocks` gives.
Blocks = Callable[[npt.NDArray[np.int64] | None], Iterable[tuple[Any, npt.NDArray[np.uint8]]]]

#: The kind of the kept records; a change to the measures or the layout is a new version.
KIND = "ink-v1"
#: One image's measures, little-endian, in the order of InkMeasures' fields.
RECORD = np.dtype(
    [("inked", "<f4"), ("border_mean", "<f4"), ("border_inked", "<i4"), ("mass", "<f4"),
     ("cy", "<f4"), ("cx", "<f4"), ("blank", "u1"), ("inverted", "u1")]
)  # fmt: skip


@dataclass(frozen=True)
class InkWork:
    """How the ink measures of an audit's images were had."""

    measured: int  # from pixels, in this run
    reused: int  # read back from an earlier run
    kept: bool  # the new ones were written (False: the catalog refused the write)


def ink_of(
    session: Session | None,
    dataset: str,
    ids: npt.NDArray[np.int64],
    blocks: Blocks,
    shape: tuple[int, int],
) -> tuple[InkMeasures, InkWork]:
    """Ink measures of the images ``ids`` of ``dataset`` (uniform ``shape``), whose pixels
    ``blocks`` reads; kept ones are reused (``session`` None: images in memory, none kept)."""
    if session is None:  # images in memory: nothing to keep them in
        parts = [ink_measures(pixels) for _, pixels in blocks(None)]
        return InkMeasures.concatenate(parts, shape), InkWork(len(ids), 0, False)
    found, records = read_measures(session, KIND, dataset_id(session, dataset), ids, RECORD)
    missing = np.flatnonzero(~found)
    if len(missing) == len(ids):  # nothing kept: one streaming pass, in order
        parts = [ink_measures(pixels) for _, pixels in blocks(None)]
    else:
        parts = [ink_measures(pixels) for _, pixels in blocks(missing)]
    new = _records(InkMeasures.concatenate(parts, shape))
    kept = write_measures(session, KIND, ids[missing], new)
    merged = np.zeros(len(ids), RECORD)
    merged[found] = records
    merged[missing] = new
    return _measures(merged), InkWork(len(missing), int(found.sum()), kept)


def _records(ink: InkMeasures) -> np.ndarray:
    out = np.zeros(len(ink.inked), RECORD)
    for name in RECORD.names or ():
        out[name] = getattr(ink, name)
    return out


def _measures(records: np.ndarray) -> InkMeasures:
    return InkMeasures(
        inked=records["inked"].astype(np.float32),
        border_mean=records["border_mean"].astype(np.float32),
        border_inked=records["border_inked"].astype(np.int32),
        mass=records["mass"].astype(np.float32),
        cy=records["cy"].astype(np.float32),
        cx=records["cx"].astype(np.float32),
        blank=records["blank"].astype(bool),
        inverted=records["inverted"].astype(bool),
    )
