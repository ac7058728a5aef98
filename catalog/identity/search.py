"""Nearest-neighbour search on signatures, behind one function that can be swapped.

:func:`nearest` uses faiss (a core dependency) when it can be imported
and a blocked numpy search otherwise. ``exact=True`` gives the true nearest
neighbours (faiss' flat index, or numpy); ``exact=False`` lets faiss probe an
inverted-file index (:data:`PROBES` of :data:`LISTS` cells), about twenty times
less work, which finds a lossy copy's original as surely, since a copy lies far
closer to it than to any cell boundary; without faiss it is exact too. Indexes
are cached per reference array, so the shipped registry is indexed once per process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: Query rows per block of the numpy search (block x reference float32 distances).
NUMPY_BLOCK = 256
#: Cells of the inverted-file index, and cells probed per query.
LISTS = 256
PROBES = 8
#: Reference rows per cell the inverted-file index is trained on.
TRAIN_PER_LIST = 64
#: Smallest reference worth an inverted-file index.
MIN_IVF = 20_000

#: (id of reference, exact) -> (reference, index, quantizer): holding the reference
#: keeps its id from being reused; holding the quantizer keeps it alive for the index.
_INDEXES: dict[tuple[int, bool], tuple[npt.NDArray[np.float32], Any, Any]] = {}


def _faiss_index(reference: npt.NDArray[np.float32], exact: bool) -> Any:
    """A faiss index over ``reference``, cached while that array lives."""
    import faiss  # type: ignore[import-not-found, unused-ignore]

    key = (id(reference), exact)
    cached = _INDEXES.get(key)
    if cached is not None and cached[0] is reference:
        return cached[1]
    data = np.ascontiguousarray(reference, dtype=np.float32)
    dims = data.shape[1]
    quantizer: Any = faiss.IndexFlatL2(dims)
    index: Any = quantizer
    if not exact and len(data) >= MIN_IVF:
        index = faiss.IndexIVFFlat(quantizer, dims, LISTS)
        # The cells' centres need a few dozen points each, not the whole reference
        # (every k-th row: the same rows each time, so the same cells).
        index.train(np.ascontiguousarray(data[:: max(1, len(data) // (TRAIN_PER_LIST * LISTS))]))
        index.nprobe = PROBES
    index.add(data)
    if len(_INDEXES) > 8:
        _INDEXES.clear()
    _INDEXES[key] = (reference, index, quantizer)
    return index


def nearest(
    reference: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    *,
    exact: bool = True,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The ``k`` nearest reference rows of each query row, by Euclidean distance.

    Returns ``(distances, positions)``, both ``(len(queries), k)``, nearest
    first; where the reference has fewer than ``k`` rows, missing neighbours
    have distance ``inf`` and position -1.

    >>> ref = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    >>> d, p = nearest(ref, np.array([[0.9, 0.0]], dtype=np.float32), 2)
    >>> p.tolist(), [round(float(x), 2) for x in d[0]]
    ([[2, 0]], [0.1, 0.9])
    """
    k_found = min(k, len(reference))
    if len(queries) == 0 or k_found == 0:
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        return distances, np.full((len(queries), k), -1, dtype=np.int64)
    try:
        import faiss  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        squared, positions = _numpy_nearest(reference, queries, k_found)
    else:
        del faiss
        index = _faiss_index(reference, exact)
        squared, positions = index.search(np.ascontiguousarray(queries, dtype=np.float32), k_found)
        squared = np.where(positions >= 0, squared, np.inf)
    distances = np.sqrt(np.maximum(squared, 0)).astype(np.float32)
    positions = positions.astype(np.int64)
    if k_found < k:
        pad = k - k_found
        distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
        positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
    return distances, positions


def _numpy_nearest(
    reference: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    ref = reference.astype(np.float32)
    ref_norms = (ref * ref).sum(axis=1)
    out_d = np.empty((len(queries), k), dtype=np.float32)
    out_p = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), NUMPY_BLOCK):
        block = queries[start : start + NUMPY_BLOCK].astype(np.float32)
        squared = ref_norms[None, :] - 2 * (block @ ref.T) + (block * block).sum(axis=1)[:, None]
        part = (
            np.argpartition(squared, k - 1, axis=1)[:, :k]
            if k < len(ref)
            else np.tile(np.arange(len(ref)), (len(block), 1))
        )
        values = np.take_along_axis(squared, part, axis=1)
        order = np.argsort(values, axis=1, kind="stable")
        out_p[start : start + len(block)] = np.take_along_axis(part, order, axis=1)
        out_d[start : start + len(block)] = np.take_along_axis(values, order, axis=1)
    return out_d, out_p
