"""Near duplicates: pairs that are nearly identical (the measure: :mod:`catalog.audit.neighbours`).

Sub-quadratic: every image's embedding is taken from the catalog (those missing are
computed and stored first, so later audits and the web view reuse them; a catalog the
audit may not write to gets them computed in memory), a nearest-neighbour index over one
image per group of byte-identical ones gives the candidate pairs
(:func:`catalog.similarity.candidate_pairs`), and only those get the exact shift-tolerant
check, their pixels read by id in blocks.

A later audit builds on what the last one kept (:mod:`catalog.audit.kept_pairs`): it
searches the neighbours of the new images and of the few earlier ones near them, and
keeps the other images' pairs; ``audit --full`` searches every image again.
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
from catalog.audit.kept_pairs import KeptSearch, keep, paired_ids, read_kept
from catalog.pixels import pixels_of
from catalog.query import Selection, dataset_id
from catalog.similarity import (
    NeighbourIndex,
    build_index,
    candidate_pairs,
    compute_embeddings,
    embed_pixels,
)
from catalog.similarity import neighbours as rule
from catalog.similarity.embed import DIMENSIONS
from catalog.similarity.index import FaissIndex, NeighbourSearch
from catalog.similarity.store import embed_images, load_embeddings_of

# Verified pairs of a block: first and second positions, and their distances.
_Verified = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def run(context: AuditContext) -> Outcome:
    data = context.data
    tick = context.ticker("near-duplicates", len(data.ids))
    return check_near_duplicates(data, tick, full=context.full)


def check_near_duplicates(
    data: DatasetImages, progress: Callable[[int], None] | None = None, *, full: bool = False
) -> Outcome:
    """Near-duplicate pairs of ``data``'s images, as findings and a summary.

    With ``full`` every image's neighbours are searched; otherwise a search kept by an
    earlier audit of the same images and settings is built on (see
    :mod:`catalog.audit.kept_pairs`), and this one's is kept for the next.
    """
    if data.shape is None or len(data) < 2:
        return [], {
            "pairs": 0,
            "skipped": "images of different sizes" if data.shape is None else None,
        }
    first = representatives(data)
    kept, why = None, "--full" if full else "images in memory"
    if data.session is not None and not full:
        dataset = dataset_id(data.session, data.name)
        kept, why = read_kept(data.session, dataset, data.selected_splits, data.ids[first])
    if kept is None:
        pairs, summary = _full_search(data, first, progress, why)
    else:
        pairs, summary = _search_since(data, first, kept, progress)
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
    summary = {"pairs": len(pairs), "across_splits": across, "threshold": DEFAULT_THRESHOLD,
               **summary}  # fmt: skip
    return findings, summary


def representatives(data: DatasetImages) -> npt.NDArray[np.int64]:
    """Positions of one image per group of byte-identical ones (exact duplicates are
    reported already): the one with the lowest id, so a later ingest never replaces it;
    in position order."""
    by_id = np.argsort(data.ids, kind="stable")
    _, first = np.unique(data.sha256[by_id], return_index=True)
    return np.sort(by_id[first]).astype(np.int64)


def _full_search(
    data: DatasetImages,
    first: npt.NDArray[np.int64],
    progress: Callable[[int], None] | None,
    why: str,
) -> tuple[list[NearDuplicatePair], dict[str, Any]]:
    """Every image's neighbours searched; the search kept when the catalog allows."""
    vectors, stored = _embeddings(data, first, progress)
    search = build_index(vectors)
    index = NeighbourIndex(np.arange(len(first), dtype=np.int64), vectors, search)
    pairs = _verified_pairs(data, first, index)
    summary: dict[str, Any] = {
        "embeddings": stored, "searched": len(first), "indexed": len(first), "reused": 0,
        "reuse": f"every image searched ({why})",
    }  # fmt: skip
    if data.session is not None:
        del index, vectors
        blob = search.to_bytes() if isinstance(search, FaissIndex) else None
        dataset = dataset_id(data.session, data.name)
        kept = keep(data.session, dataset, data.selected_splits, data.ids[first],
                    paired_ids(data.ids[first], pairs), blob, len(first))  # fmt: skip
        if not kept:
            summary["reuse"] += "; not kept (the catalog refused the write)"
    return pairs, summary


def _search_since(
    data: DatasetImages,
    first: npt.NDArray[np.int64],
    kept: KeptSearch,
    progress: Callable[[int], None] | None,
) -> tuple[list[NearDuplicatePair], dict[str, Any]]:
    """Search the new images, the kept pairs' and those near a new one; keep the rest."""
    session = data.session
    assert session is not None
    ids = data.ids[first]
    new = np.flatnonzero(~np.isin(ids, kept.searched))
    added = embed_images(session, ids[new], chunk=data.chunk)
    if kept.index is None:  # exact: every vector, the index in position order as a full one
        vectors = _stored_vectors(data, ids)
        search: NeighbourSearch = build_index(vectors)
        order = np.arange(len(first), dtype=np.int64)
    else:  # the kept index, and what was added since it was built
        faiss_index = FaissIndex.from_bytes(kept.index, DIMENSIONS)
        since = np.concatenate([kept.searched[kept.base :], ids[new]])
        faiss_index.add(_stored_vectors(data, since))
        search = faiss_index
        in_index = np.concatenate([kept.searched, ids[new]])
        order = _positions_of(ids, in_index)
        vectors = np.zeros((0, DIMENSIONS), np.float32)
    index = NeighbourIndex(order, vectors, search)
    # Rows of the index (so positions into ``first``, through ``order``) to search.
    row_of = np.empty(len(first), np.int64)
    row_of[order] = np.arange(len(order))
    new_vectors = vectors[row_of[new]] if len(vectors) else _stored_vectors(data, ids[new])
    _, near, _ = search.within(new_vectors, rule.NEAREST_RADIUS * (1 + 1e-4) + 1e-6)
    paired = _positions_of(ids, kept.paired)
    rows = np.unique(np.concatenate([row_of[new], near, row_of[paired]]))
    row_vectors = vectors[rows] if len(vectors) else _stored_vectors(data, ids[order[rows]])
    pairs = _verified_pairs(data, first, index, rows, row_vectors)
    if progress is not None:
        progress(len(data))
    nearby = len(rows) - len(new)
    summary: dict[str, Any] = {
        "embeddings": f"stored ({added:,} computed)" if added else "stored",
        "searched": len(rows), "indexed": len(index), "reused": len(first) - len(rows),
        "reuse": f"{len(new):,} new and {nearby:,} nearby images searched against "
                 f"{len(index):,}; {len(first) - len(rows):,} reused from the search kept "
                 f"{kept.when}",
    }  # fmt: skip
    dataset = dataset_id(session, data.name)
    in_order = ids[order]
    if not keep(session, dataset, data.selected_splits, in_order,
                paired_ids(ids, pairs), None, kept.base):  # fmt: skip
        summary["reuse"] += "; not kept (the catalog refused the write)"
    return pairs, summary


def _positions_of(ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Positions in ``ids`` of the ids ``wanted`` (all present)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids, wanted, sorter=order)].astype(np.int64)


def _stored_vectors(data: DatasetImages, image_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Stored embeddings of ``image_ids``, in that order (all stored: just embedded)."""
    assert data.session is not None
    loaded = load_embeddings_of(data.session, image_ids)
    if len(loaded) != len(image_ids):  # removed meanwhile by another kind of writer
        at = np.isin(image_ids, loaded.ids)
        positions = _positions_of(data.ids, image_ids[~at])
        missing = _embed_in_memory(data, positions, None)
        out = np.empty((len(image_ids), DIMENSIONS), np.float32)
        out[at], out[~at] = loaded.vectors, missing
        return out
    return loaded.vectors


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
    data: DatasetImages,
    positions: npt.NDArray[np.int64],
    index: NeighbourIndex,
    rows: npt.NDArray[np.int64] | None = None,
    vectors: npt.NDArray[np.float32] | None = None,
) -> list[NearDuplicatePair]:
    """Candidate pairs of the images at ``positions`` (those of the index ``rows`` with
    their ``vectors``, default all), confirmed by the exact measure.

    ``index.ids`` are positions into ``positions``, and so are the returned pairs'.
    Candidates come sorted by their first image;
    each block's pixels are read once by id (the first images as range scans), and a
    worker thread checks one block while the next is read (numpy lets go of the GIL in
    the comparisons, the database driver while it steps), so a second core is used.
    """
    firsts, seconds, dists = [], [], []
    step = max(256, data.chunk // 2)  # two images per pair

    def keep(found: Future[_Verified]) -> None:
        a, b, d = found.result()
        firsts.append(a)
        seconds.append(b)
        dists.append(d)

    with ThreadPoolExecutor(1) as worker:
        pending: Future[_Verified] | None = None
        for block in candidate_pairs(index, rows=rows, vectors=vectors):
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
