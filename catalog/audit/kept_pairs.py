"""Near duplicates after an ingest: search only what can have changed since the last audit.

The candidate rule (:func:`catalog.similarity.candidate_pairs`) takes an image's
:data:`~catalog.similarity.neighbours.CANDIDATE_K` nearest neighbours within
:data:`~catalog.similarity.neighbours.CANDIDATE_RADIUS`, and its nearest within
:data:`~catalog.similarity.neighbours.NEAREST_RADIUS`. An added image changes an earlier
image's candidates only if it lands within the first radius and no farther than that
image's ``k``-th nearest neighbour, or within the second and no farther than its nearest
(its *reach*); pixels, and so the exact check of a pair, never change. So an audit keeps

- ``searched``: the images whose neighbours it searched (one per group of byte-identical
  images, the lowest id, so an ingest never replaces one), in the order of its index,
  with each one's reach;
- ``pairs``: the pairs it confirmed, with their distances;
- ``index``: its faiss index (only above the exact search's 10,000 images), holding the
  first ``base`` images of ``searched``,

and the next audit searches the neighbours of the new images, of the earlier images a new
one lands within reach of, and of the images of every kept pair. Every other image has
the candidates it had, none of them confirmed. Of the candidates found, a pair of two
earlier images was checked by the earlier audit (adding images never brings an earlier
image into another's nearest), so only pairs with a new image get the exact check. With
the exact search the pairs are a full search's (``tests/test_near_duplicates_kept.py``);
with faiss they are as close to a full search's as two approximate searches are: the kept
index's cells (centres drawn from the images it was built on) stay, new images join the
cells nearest them.

A full search is made instead (and kept) when nothing is kept, when it was kept under
other settings (:func:`state_key`: the embedding kind, the rule's and the index's
constants, the audited splits; an audit of some splits keeps its search apart from
the whole dataset's, :data:`PART_CHECK`), when an image searched then is gone (removed, or its
split ingested again: ids and pixel digests are compared, since SQLite may give a
deleted image's id to a new one), when the kept search was exact and the images are now too many
for it, or when more than :data:`REBUILD_FRACTION` of the indexed images were added
since the index was built (new images would crowd cells drawn without them).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.audit.images import DatasetImages
from catalog.audit.kept_state import (
    Blob,
    find_ids,
    pack,
    pack_ids,
    read_state,
    unpack,
    unpack_ids,
    write_state,
)
from catalog.audit.pair_check import KnownPairs, stored_vectors, verified_pairs
from catalog.audit.pair_distance import DEFAULT_THRESHOLD, NearDuplicatePair
from catalog.select.filters import dataset_id
from catalog.similarity import index as ivf
from catalog.similarity import neighbours as rule
from catalog.similarity.embed import DIMENSIONS, KIND
from catalog.similarity.index import FaissIndex, NeighbourSearch, build_index
from catalog.similarity.neighbours import NeighbourIndex
from catalog.similarity.vectors import embed_images

CHECK = "near-duplicates"
#: Where the search of an audit of some splits only (``--split``) is kept: beside the
#: whole dataset's, so that audits of both, taking turns, each build on their own last
#: search. One such slot per dataset: its key names the splits, so an audit of other
#: splits searches in full and takes the slot.
PART_CHECK = "near-duplicates:part"
REBUILD_FRACTION = 0.25
"""Images added since the kept index was built, as a fraction of it, that call for a new one."""
VERSION = 3
_SLACK = 1e-4  # relative: distances of one pair from two searches may differ in the last bits


def slot(splits: tuple[str, ...]) -> str:
    """The kept state's ``check`` name for an audit of ``splits`` (empty: all)."""
    return PART_CHECK if splits else CHECK


def state_key(splits: tuple[str, ...]) -> str:
    """What the kept search depends on besides the images: a change means a full search."""
    return (
        f"v{VERSION} {KIND} k={rule.CANDIDATE_K} r={rule.CANDIDATE_RADIUS} "
        f"nearest={rule.NEAREST_RADIUS} t={DEFAULT_THRESHOLD} exact<={ivf.EXACT_LIMIT} "
        f"ivf={ivf.IVF_POINTS_PER_LIST},{ivf.IVF_PROBES},{ivf.IVF_SEED},{ivf.HNSW_LINKS},"
        f"{ivf.HNSW_SEARCH} splits={','.join(splits) or '*'}"
    )


@dataclass
class KeptSearch:
    """What the last audit's near-duplicate search kept, for the next to start from."""

    searched: npt.NDArray[np.int64]  # image ids, in index order
    reach: npt.NDArray[np.float32]  # (n, 2): nearest and k-th nearest distance, index order
    pairs: dict[str, npt.NDArray[Any]]  # first, second (image ids), distance
    index: npt.NDArray[np.uint8] | None  # the faiss index, or None (exact search)
    base: int  # searched[:base] are in ``index``
    when: str  # when it was kept
    token: int  # names the index the search was made with


def read_kept(
    session: Session,
    dataset: int,
    splits: tuple[str, ...],
    representatives: npt.NDArray[np.int64],
    digests: npt.NDArray[np.uint64],
) -> tuple[KeptSearch | None, str]:
    """The kept search if it can be built on, else None; and why not.

    ``representatives`` are the image ids to search now, ``digests`` their pixels'
    (an id can be given again to a new image once its own was deleted)."""
    blobs = read_state(session, dataset, slot(splits), state_key(splits))
    if blobs is None or not {"searched", "pairs", "meta"} <= set(blobs):
        return None, "nothing kept under these settings"
    meta = unpack(blobs["meta"])
    if "index" in blobs and unpack(blobs.get("index_token", b""))["token"] != meta["token"]:
        return None, "the kept index and search disagree (two audits at once?)"
    kept = KeptSearch(
        unpack_ids(blobs["searched"]), meta["reach"], unpack(blobs["pairs"]),
        np.frombuffer(blobs["index"], np.uint8) if "index" in blobs else None,
        int(meta["base"]), str(meta["when"]), int(meta["token"]),
    )  # fmt: skip
    at = find_ids(representatives, kept.searched)
    if (at < 0).any() or (digests[at] != meta["digests"]).any():
        return None, "images searched before are gone (removed or ingested again)"
    added = len(representatives) - kept.base
    if kept.index is not None and not ivf.faiss_available():
        return None, "the kept index needs faiss, which cannot be imported"
    if kept.index is None and len(representatives) > ivf.EXACT_LIMIT:
        return None, "the kept search was exact; the images are now too many for it"
    if kept.index is not None and added > REBUILD_FRACTION * kept.base:
        return None, f"{added:,} images added since the index of {kept.base:,} was built"
    return kept, ""


def keep(
    data: DatasetImages,
    searched: npt.NDArray[np.int64],
    reach: npt.NDArray[np.float32],
    pairs: list[NearDuplicatePair],
    ids: npt.NDArray[np.int64],
    index: Blob | None,
    base: int,
    token: int = 0,
) -> bool:
    """Keep a search: ``searched`` image ids in index order with their ``reach``, the
    confirmed ``pairs`` (positions into ``ids``); a new ``index`` replaces the kept one,
    None keeps it (an incremental search made with the index named ``token``).

    A new index gets a new token, kept beside it and in the search's ``meta``: when two
    audits keep their searches at once, a search made with one index and kept beside
    another is not used."""
    assert data.session is not None
    when = datetime.now(UTC).isoformat(timespec="seconds")
    if index is not None:
        token = secrets.randbits(62)
    first = np.asarray([p.first for p in pairs], np.int64)
    second = np.asarray([p.second for p in pairs], np.int64)
    blobs: dict[str, Blob] = {
        "searched": pack_ids(searched),
        "meta": pack(base=np.array(base), when=np.array(when), reach=reach.astype(np.float32),
                     token=np.array(token), digests=data.digests[find_ids(data.ids, searched)]),
        "pairs": pack(first=ids[first], second=ids[second],
                      distance=np.asarray([p.distance for p in pairs], np.float64)),
    }  # fmt: skip
    if index is not None:
        blobs["index"] = index
        blobs["index_token"] = pack(token=np.array(token))
    # A full search replaces everything (an exact one drops any kept index).
    replace_all = index is not None or len(searched) <= ivf.EXACT_LIMIT
    dataset = dataset_id(data.session, data.name)
    splits = data.selected_splits
    return write_state(data.session, dataset, slot(splits), state_key(splits), blobs,
                       replace_all=replace_all)  # fmt: skip


def search_since(
    data: DatasetImages,
    first: npt.NDArray[np.int64],
    kept: KeptSearch,
    progress: Callable[[int], None] | None,
) -> tuple[list[NearDuplicatePair], dict[str, Any]]:
    """Pairs of the images at ``first``: search the new ones, those within reach of a new
    one and the kept pairs'; the rest as kept."""
    session = data.session
    assert session is not None
    ids = data.ids[first]
    new = np.flatnonzero(~np.isin(ids, kept.searched))
    added = embed_images(session, ids[new], chunk=data.chunk)
    if kept.index is None:  # exact: every vector, the index in position order as a full one
        vectors = stored_vectors(data, ids)
        search: NeighbourSearch = build_index(vectors)
        order = np.arange(len(first), dtype=np.int64)
        new_vectors = vectors[new]
    else:  # the kept index, and what was added since it was built
        faiss_index = FaissIndex.from_bytes(kept.index, DIMENSIONS)
        since = stored_vectors(data, np.concatenate([kept.searched[kept.base :], ids[new]]))
        faiss_index.add(since)
        search = faiss_index
        order = find_ids(ids, np.concatenate([kept.searched, ids[new]]))
        vectors = np.zeros((0, DIMENSIONS), np.float32)  # not held: rows are read by id
        new_vectors = since[len(since) - len(new) :]
    index = NeighbourIndex(order, vectors, search)
    row_of = np.empty(len(first), np.int64)  # index row of each position
    row_of[order] = np.arange(len(order))
    old_reach = np.full((len(first), 2), np.inf, np.float32)  # by index row
    old_reach[row_of[find_ids(ids, kept.searched)]] = kept.reach
    near = _within_reach(search, new_vectors, old_reach)
    kept_first, kept_second = (
        find_ids(ids, kept.pairs["first"]),
        find_ids(ids, kept.pairs["second"]),
    )
    rows = np.unique(np.concatenate([row_of[new], near, row_of[kept_first], row_of[kept_second]]))
    row_vectors = vectors[rows] if len(vectors) else stored_vectors(data, ids[order[rows]])
    reach = old_reach
    found = np.empty((len(rows), 2), np.float32)
    old = np.ones(len(first), bool)
    old[new] = False
    known = KnownPairs(old, np.minimum(kept_first, kept_second), np.maximum(kept_first, kept_second),
                       kept.pairs["distance"].astype(np.float64))  # fmt: skip
    pairs = verified_pairs(data, first, index, rows, row_vectors, found, known)
    reach[rows] = found
    if progress is not None:
        progress(len(data))
    nearby, reused = len(rows) - len(new), len(first) - len(rows)
    summary: dict[str, Any] = {
        "embeddings": f"stored ({added:,} computed)" if added else "stored",
        "searched": len(rows), "indexed": len(index), "reused": reused,
        "reuse": f"{len(new):,} new and {nearby:,} nearby images searched against "
                 f"{len(index):,}; {reused:,} reused from the search kept {kept.when}",
    }  # fmt: skip
    if not keep(data, ids[order], reach, pairs, ids, None, kept.base, kept.token):
        summary["reuse"] += "; not kept (the catalog refused the write)"
    return pairs, summary


def _within_reach(
    search: NeighbourSearch, new_vectors: npt.NDArray[np.float32], reach: npt.NDArray[np.float32]
) -> npt.NDArray[np.int64]:
    """Index rows of earlier images that a new image lands within reach of."""
    _, near, distances = search.within(new_vectors, rule.NEAREST_RADIUS * (1 + _SLACK) + 1e-6)
    limit_k = np.minimum(reach[near, 1], rule.CANDIDATE_RADIUS) * (1 + _SLACK) + 1e-6
    limit_1 = np.minimum(reach[near, 0], rule.NEAREST_RADIUS) * (1 + _SLACK) + 1e-6
    return np.unique(near[(distances <= limit_k) | (distances <= limit_1)])
