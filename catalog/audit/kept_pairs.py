"""Near duplicates after an ingest: search only what can have changed since the last audit.

The candidate rule (:func:`catalog.similarity.candidate_pairs`) looks at each image's
nearest neighbours within :data:`~catalog.similarity.neighbours.NEAREST_RADIUS` (the
larger of its two radii). Adding images changes an earlier image's candidates only if a
new image lands within that radius of it; pixels, and so the exact check of a pair, never
change. So after an audit has kept

- ``searched``: the images whose neighbours it searched (one per group of byte-identical
  images, the lowest id, so an ingest never replaces one), in the order of its index;
- ``paired``: the images of the pairs it confirmed;
- ``index``: its faiss index (only above the exact search's 10,000 images), holding the
  first ``base`` images of ``searched``,

the next audit searches the neighbours of the new images, of the earlier images within
that radius of a new one, and of the images of every kept pair; every other image's
candidates are those it had, none of which was confirmed, so they are left alone. With
the exact search the pairs are those of a full search (``tests/test_near_duplicates_kept.py``
checks it); with faiss they are as close to them as two approximate searches are, since
the kept index's cells (centres drawn from the images it was built on) stay and new
images join the cells nearest them.

A full search is made instead (and kept) when nothing is kept, when it was kept under
other settings (:func:`state_key`: the embedding kind, the rule's and the index's
constants, the audited splits), when an image searched then is gone (removed, or its
split ingested again), when the kept search was exact and the images are now too many
for it, or when more than :data:`REBUILD_FRACTION` of the indexed images were added
since the index was built (new images would crowd cells drawn without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.audit.kept_state import pack, pack_ids, read_state, unpack, unpack_ids, write_state
from catalog.audit.neighbours import DEFAULT_THRESHOLD, NearDuplicatePair
from catalog.similarity import neighbours as rule
from catalog.similarity.embed import KIND
from catalog.similarity import index as ivf

CHECK = "near-duplicates"
REBUILD_FRACTION = 0.25
"""Images added since the kept index was built, as a fraction of it, that call for a new one."""
VERSION = 1


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
    paired: npt.NDArray[np.int64]  # image ids of its confirmed pairs
    index: npt.NDArray[np.uint8] | None  # the faiss index, or None (exact search)
    base: int  # searched[:base] are in ``index``
    when: str  # when it was kept


def read_kept(
    session: Session, dataset: int, splits: tuple[str, ...], representatives: npt.NDArray[np.int64]
) -> tuple[KeptSearch | None, str]:
    """The kept search if it can be built on, else None; and why not."""
    blobs = read_state(session, dataset, CHECK, state_key(splits))
    if blobs is None or not {"searched", "paired", "meta"} <= set(blobs):
        return None, "nothing kept under these settings"
    meta = unpack(blobs["meta"])
    kept = KeptSearch(
        unpack_ids(blobs["searched"]), unpack_ids(blobs["paired"]),
        np.frombuffer(blobs["index"], np.uint8) if "index" in blobs else None,
        int(meta["base"]), str(meta["when"]),
    )  # fmt: skip
    if not np.isin(kept.searched, representatives).all():
        return None, "images searched before are gone (removed or ingested again)"
    added = len(representatives) - kept.base
    if kept.index is None and len(representatives) > ivf.EXACT_LIMIT:
        return None, "the kept search was exact; the images are now too many for it"
    if kept.index is not None and added > REBUILD_FRACTION * kept.base:
        return None, f"{added:,} images added since the index of {kept.base:,} was built"
    return kept, ""


def keep(
    session: Session,
    dataset: int,
    splits: tuple[str, ...],
    searched: npt.NDArray[np.int64],
    paired: npt.NDArray[np.int64],
    index: npt.NDArray[np.uint8] | None,
    base: int,
) -> bool:
    """Keep a search (a new ``index`` replaces the kept one; None keeps the kept one)."""
    meta = pack(base=np.array(base), when=np.array(datetime.now(UTC).isoformat(timespec="seconds")))
    blobs: dict[str, bytes | npt.NDArray[np.uint8]] = {
        "searched": pack_ids(searched), "paired": pack_ids(np.unique(paired)), "meta": meta,
    }  # fmt: skip
    if index is not None:
        blobs["index"] = index
    # An exact search drops any kept index; an incremental one keeps the one it used.
    replace_all = index is not None or len(searched) <= ivf.EXACT_LIMIT
    return write_state(session, dataset, CHECK, state_key(splits), blobs, replace_all=replace_all)


def paired_ids(ids: npt.NDArray[np.int64], pairs: list[NearDuplicatePair]) -> npt.NDArray[np.int64]:
    """Image ids of the images in ``pairs`` (whose positions index ``ids``)."""
    at = [p.first for p in pairs] + [p.second for p in pairs]
    return np.unique(ids[np.asarray(at, np.int64)]) if at else np.zeros(0, np.int64)
