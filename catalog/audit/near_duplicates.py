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
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages
from catalog.audit.kept_pairs import keep, read_kept, search_since
from catalog.audit.pair_check import embeddings, verified_pairs
from catalog.audit.pair_distance import DEFAULT_THRESHOLD, NearDuplicatePair
from catalog.select.filters import dataset_id
from catalog.similarity.index import FaissIndex, build_index
from catalog.similarity.neighbours import NeighbourIndex


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
        kept, why = read_kept(data.session, dataset, data.selected_splits, data.ids[first],
                              data.digests[first])  # fmt: skip
    if kept is None:
        pairs, summary = _full_search(data, first, progress, why)
    else:
        pairs, summary = search_since(data, first, kept, progress)
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
    vectors, stored = embeddings(data, first, progress)
    search = build_index(vectors)
    index = NeighbourIndex(np.arange(len(first), dtype=np.int64), vectors, search)
    reach = np.empty((len(first), 2), np.float32)
    pairs = verified_pairs(data, first, index, reach=reach)
    summary: dict[str, Any] = {
        "embeddings": stored, "searched": len(first), "indexed": len(first), "reused": 0,
        "reuse": f"every image searched ({why})",
    }  # fmt: skip
    if data.session is not None:
        del index, vectors
        blob = None
        if isinstance(search, FaissIndex):  # written in pieces, its own vectors let go first
            search.release_points()
            blob = search.write
        ids = data.ids[first]
        if not keep(data, ids, reach, pairs, ids, blob, len(first)):
            summary["reuse"] += "; not kept (the catalog refused the write)"
    return pairs, summary
