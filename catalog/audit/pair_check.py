"""The near-duplicate check's two costly steps: embeddings of the images, and the exact
check of candidate pairs (:mod:`catalog.audit.near_duplicates` searches every image,
:mod:`catalog.audit.kept_pairs` only what changed since the last audit)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.images import DatasetImages
from catalog.audit.kept_state import find_ids
from catalog.audit.pair_distance import (
    DEFAULT_THRESHOLD,
    NearDuplicatePair,
    sorted_pairs,
    verify_pairs,
)
from catalog.db.engine import write_if_allowed
from catalog.select.reads import pixels_of
from catalog.selection import Selection
from catalog.similarity.embed import DIMENSIONS, embed_pixels
from catalog.similarity.neighbours import NeighbourIndex, candidate_pairs
from catalog.similarity.vectors import compute_embeddings, load_embeddings_of

# Verified pairs of a block: first and second positions, and their distances.
_Verified = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class KnownPairs:
    """What an earlier exact check settled: pairs of images that were both there then
    (``old``) were checked then, and confirmed only if they are among ``first, second``."""

    old: npt.NDArray[np.bool_]  # per position
    first: npt.NDArray[np.int64]  # confirmed pairs, positions, first < second
    second: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float64]

    def settled(
        self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Which candidates ``(a, b)`` were checked already, which of those were confirmed,
        and their distances (where confirmed)."""
        settled = self.old[a] & self.old[b]
        n = np.int64(len(self.old))
        keys = self.first * n + self.second
        order = np.argsort(keys)
        wanted = a * n + b
        at = np.minimum(np.searchsorted(keys, wanted, sorter=order), max(len(keys) - 1, 0))
        found = settled & (keys[order[at]] == wanted) if len(keys) else np.zeros(len(a), bool)
        distances = self.distances[order[at]] if len(keys) else np.zeros(len(a))
        return settled, found, distances


def embeddings(
    data: DatasetImages, positions: npt.NDArray[np.int64], progress: Callable[[int], None] | None
) -> tuple[npt.NDArray[np.float32], str]:
    """Embeddings of the images at ``positions``, and where they came from.

    Missing ones are computed and stored (committed at once, so a later failure keeps them);
    a catalog that refuses the write (read-only file, a role without INSERT) gets them
    computed in memory instead.
    """
    if data.session is None:
        return embed_in_memory(data, positions, progress), "computed in memory"
    session = data.session
    selection = Selection(dataset=data.name)  # the whole dataset: stored for every use
    stored, added = write_if_allowed(
        session, lambda: compute_embeddings(session, selection, chunk=data.chunk, progress=progress)
    )
    if not stored:
        return embed_in_memory(data, positions, progress), "computed in memory (read-only)"
    how = f"stored ({added:,} computed)" if added else "stored"
    loaded = load_embeddings_of(session, data.ids[positions])
    if len(loaded) != len(positions):  # another kind of writer removed some meanwhile
        return embed_in_memory(data, positions, progress), "computed in memory"
    return loaded.vectors, how


def stored_vectors(
    data: DatasetImages, image_ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Stored embeddings of ``image_ids`` in that order (any missing computed in memory)."""
    assert data.session is not None
    loaded = load_embeddings_of(data.session, image_ids)
    if len(loaded) == len(image_ids):
        return loaded.vectors
    at = np.isin(image_ids, loaded.ids)
    positions = find_ids(data.ids, image_ids[~at])
    out = np.empty((len(image_ids), DIMENSIONS), np.float32)
    out[at], out[~at] = loaded.vectors, embed_in_memory(data, positions, None)
    return out


def embed_in_memory(
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


def verified_pairs(
    data: DatasetImages,
    positions: npt.NDArray[np.int64],
    index: NeighbourIndex,
    rows: npt.NDArray[np.int64] | None = None,
    vectors: npt.NDArray[np.float32] | None = None,
    reach: npt.NDArray[np.float32] | None = None,
    known: KnownPairs | None = None,
) -> list[NearDuplicatePair]:
    """Candidate pairs of the images at ``positions`` (those of the index ``rows`` with
    their ``vectors``, default all; ``reach`` as :func:`candidate_pairs` fills it),
    confirmed by the exact measure unless ``known`` settled them already.

    ``index.ids`` are positions into ``positions``, and so are the returned pairs'.
    Candidates come sorted by their first image; each block's pixels are read once by id
    (the first images as range scans), and a worker thread checks one block while the
    next is read (numpy lets go of the GIL in the comparisons, the database driver while
    it steps), so a second core is used.
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
        for block in candidate_pairs(index, rows=rows, vectors=vectors, reach=reach):
            a_all, b_all = block.first, block.second
            if known is not None:
                settled, confirmed, distances = known.settled(a_all, b_all)
                firsts.append(a_all[confirmed])
                seconds.append(b_all[confirmed])
                dists.append(distances[confirmed])
                a_all, b_all = a_all[~settled], b_all[~settled]
            for start in range(0, len(a_all), step):
                a = a_all[start : start + step]
                b = b_all[start : start + step]
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
