"""Near duplicates: pairs that are nearly identical (the measure: :mod:`catalog.audit.neighbours`).

Sub-quadratic: every image's embedding is taken from the catalog (those missing are
computed and stored first, so later audits and the web view reuse them; a catalog the
audit may not write to gets them computed in memory), a nearest-neighbour index over one
image per group of byte-identical ones gives the candidate pairs
(:func:`catalog.similarity.candidate_pairs`), and only those get the exact shift-tolerant
check, their pixels read by id in blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import DBAPIError

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages
from catalog.audit.neighbours import (
    DEFAULT_THRESHOLD,
    NearDuplicatePair,
    sorted_pairs,
    verify_pairs,
)
from catalog.pixels import pixels_of
from catalog.query import Selection
from catalog.similarity import (
    NeighbourIndex,
    build_index,
    candidate_pairs,
    compute_embeddings,
    embed_pixels,
)
from catalog.similarity.embed import DIMENSIONS
from catalog.similarity.store import load_embeddings_of

# Verified pairs of a block: first and second positions, and their distances.
_Verified = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def run(context: AuditContext) -> Outcome:
    data = context.data
    return check_near_duplicates(data, context.ticker("near-duplicates", len(data.ids)))


def check_near_duplicates(
    data: DatasetImages, progress: Callable[[int], None] | None = None
) -> Outcome:
    if data.shape is None or len(data) < 2:
        return [], {
            "pairs": 0,
            "skipped": "images of different sizes" if data.shape is None else None,
        }
    # One representative per exact-duplicate group: those are reported already.
    _, first = np.unique(data.sha256, return_index=True)
    first = np.sort(first)
    vectors, stored = _embeddings(data, first, progress)
    pairs = _verified_pairs(data, first, vectors)
    findings: list[Finding] = []
    across = 0
    for pair in pairs:
        a, b = int(first[pair.first]), int(first[pair.second])
        refs = data.refs([a, b])
        cross = refs[0].split != refs[1].split
        across += cross
        conflict = refs[0].label != refs[1].label
        findings.append(
            Finding("near-duplicates", "near-duplicate-across-splits" if cross else "near-duplicate",
                    "warning",
                    f"{refs[0].split}:{refs[0].index} and {refs[1].split}:{refs[1].index} are "
                    f"nearly identical (distance {pair.distance:.1f})"
                    + (f"; labels differ ({refs[0].label} vs {refs[1].label})" if conflict else ""),
                    refs, {"distance": round(float(pair.distance), 3), "label_conflict": conflict})
        )  # fmt: skip
    summary: dict[str, Any] = {
        "pairs": len(pairs), "across_splits": across, "threshold": DEFAULT_THRESHOLD,
        "embeddings": stored,
    }  # fmt: skip
    return findings, summary


def _embeddings(
    data: DatasetImages, positions: npt.NDArray[np.int64], progress: Callable[[int], None] | None
) -> tuple[npt.NDArray[np.float32], str]:
    """Embeddings of the images at ``positions``, and where they came from.

    Missing ones are computed and stored (committed at once, so a later failure keeps them);
    a catalog that refuses the write (read-only file, a role without INSERT) gets them
    computed in memory instead.
    """
    if data.session is None:
        return _embed_in_memory(data, positions, progress), "computed in memory"
    session = data.session
    selection = Selection(dataset=data.name)  # the whole dataset: stored for every use
    how = "stored"
    try:
        with session.begin_nested():
            added = compute_embeddings(session, selection, chunk=data.chunk, progress=progress)
        if added:
            session.commit()
            how = f"stored ({added:,} computed)"
    except DBAPIError:
        return _embed_in_memory(data, positions, progress), "computed in memory (read-only)"
    loaded = load_embeddings_of(session, data.ids[positions])
    if len(loaded) != len(positions):  # another kind of writer removed some meanwhile
        return _embed_in_memory(data, positions, progress), "computed in memory"
    return loaded.vectors, how


def _embed_in_memory(
    data: DatasetImages, positions: npt.NDArray[np.int64], progress: Callable[[int], None] | None
) -> npt.NDArray[np.float32]:
    out = np.empty((len(positions), DIMENSIONS), np.float32)
    done = 0
    for part, pixels in data.blocks(positions):
        out[done : done + len(part)] = embed_pixels(pixels)
        done += len(part)
        if progress is not None:
            progress(len(part))
    return out


def _verified_pairs(
    data: DatasetImages, positions: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]
) -> list[NearDuplicatePair]:
    """Candidate pairs of the images at ``positions``, confirmed by the exact measure.

    Returned pairs index into ``positions``. Candidates come sorted by their first image;
    each block's pixels are read once by id (the first images as range scans), and a
    worker thread checks one block while the next is read (numpy lets go of the GIL in
    the comparisons, the database driver while it steps), so a second core is used.
    """
    index = NeighbourIndex(np.arange(len(positions), dtype=np.int64), vectors, build_index(vectors))
    firsts, seconds, dists = [], [], []
    step = max(256, data.chunk // 2)  # two images per pair

    def keep(found: Future[_Verified]) -> None:
        a, b, d = found.result()
        firsts.append(a)
        seconds.append(b)
        dists.append(d)

    with ThreadPoolExecutor(1) as worker:
        pending: Future[_Verified] | None = None
        for block in candidate_pairs(index):
            for start in range(0, len(block), step):
                a = block.first[start : start + step]
                b = block.second[start : start + step]
                wanted = np.unique(np.concatenate([a, b]))
                pixels = _pixels(data, positions[wanted])
                submitted = worker.submit(_verify_block, a, b, wanted, pixels)
                if pending is not None:
                    keep(pending)
                pending = submitted
        if pending is not None:
            keep(pending)
    return sorted_pairs(firsts, seconds, dists)


def _verify_block(
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    wanted: npt.NDArray[np.int64],
    pixels: npt.NDArray[np.uint8],
) -> _Verified:
    """The pairs ``(a, b)`` within the threshold, and their distances; ``pixels`` are those
    of the sorted positions ``wanted``."""
    kept, d = verify_pairs(
        pixels[np.searchsorted(wanted, a)], pixels[np.searchsorted(wanted, b)], DEFAULT_THRESHOLD
    )
    return a[kept], b[kept], d[kept]


def _pixels(data: DatasetImages, at: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    if data.pixels is not None:
        return data.pixels[at]
    assert data.session is not None
    return pixels_of(data.session, data.ids[at])
