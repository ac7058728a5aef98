"""Nearest-neighbour search over embeddings: exact for small sets, approximate for big ones.

:func:`build_index` takes an ``(n, d)`` float array and returns an object with two methods,
both answering Euclidean distances and positions into the array it was built from:

- ``query(vectors, k)``: the ``k`` nearest indexed points of each given vector;
- ``query_all(k)``: the ``k`` nearest *other* indexed points of every indexed point.

:class:`ExactIndex` is a blocked float32 numpy search (memory set by its block sizes, time
quadratic in ``n``); :class:`FaissIndex` is an inverted-file index (IVF) from faiss-cpu, the
library chosen in ``docs/ann-choice.md``, imported only when it is used: small cells of
:data:`IVF_POINTS_PER_LIST` points around centres drawn from the data, the cells nearest a
query found by a small HNSW graph over the centres, so building and querying all points
grow about as ``n log n`` (a flat list of ``4 sqrt(n)`` k-means centres, as before, grows
as ``n^1.5``; at 300,000 digits it took 35 s of CPU where this takes 19 s). ``method="auto"``
uses the exact search up to :data:`EXACT_LIMIT` points and faiss above. faiss-cpu is a core
dependency; where it cannot be imported all the same (a broken wheel, a platform without
one), every method falls back to the exact search: slower at large sizes, never refused.

Rows of a result are sorted by distance, ties by position; where fewer than ``k`` points
exist the row is padded with position ``-1`` at distance ``inf``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_LIMIT",
    "ExactIndex",
    "FaissIndex",
    "Method",
    "NeighbourSearch",
    "Neighbours",
    "build_index",
    "faiss_available",
]

Method = Literal["auto", "exact", "faiss"]

EXACT_LIMIT = 10_000
"""Largest number of points ``method="auto"`` searches exactly."""

Neighbours = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
"""``(positions, distances)``, both of shape ``(m, k)``."""

IVF_PROBES = 12  # cells scanned per query
IVF_POINTS_PER_LIST = 64  # cells: n / 64, so a query scans about 770 points
IVF_SEED = 1234  # which points are the cells' centres
HNSW_LINKS = 16  # the centres' graph: links per node (faiss's M)
HNSW_SEARCH = 24  # and the candidates it keeps while searching (efSearch)
_QUERY_BLOCK = 512  # exact search: query rows per block
_POINT_BLOCK = 4096  # exact search: indexed rows per block (8 MB of float32 distances)


class NeighbourSearch(Protocol):
    """What :func:`build_index` returns."""

    def __len__(self) -> int: ...

    def query(self, vectors: npt.NDArray[np.floating[Any]], k: int) -> Neighbours: ...

    def query_all(self, k: int) -> Neighbours: ...

    def within(self, vectors: npt.NDArray[np.floating[Any]], radius: float) -> Pairs: ...


Pairs = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]
"""``(query rows, indexed positions, distances)`` of every pair found within a radius."""


def build_index(
    vectors: npt.NDArray[np.floating[Any]], *, method: Method = "auto", threads: int | None = None
) -> NeighbourSearch:
    """Build a nearest-neighbour index over ``vectors``.

    Parameters
    ----------
    vectors
        ``(n, d)`` float array (float16 is widened to float32).
    method
        ``"exact"``, ``"faiss"`` or ``"auto"`` (exact up to :data:`EXACT_LIMIT` points);
        ``"faiss"`` and ``"auto"`` search exactly when faiss cannot be imported.
    threads
        Threads faiss may use (default: its own default, all cores).

    Returns
    -------
    NeighbourSearch
        An index answering ``query(vectors, k)`` and ``query_all(k)``.

    Raises
    ------
    ValueError
        If ``vectors`` is not 2-D or ``method`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    >>> positions, distances = build_index(points).query_all(1)
    >>> positions.ravel().tolist(), distances.ravel().tolist()
    ([1, 0, 0], [1.0, 1.0, 3.0])
    """
    data = _as_matrix(vectors, "vectors")
    if method == "exact" or (method == "auto" and len(data) <= EXACT_LIMIT):
        return ExactIndex(data)
    if method in ("faiss", "auto"):
        return FaissIndex(data, threads=threads) if faiss_available() else ExactIndex(data)
    msg = f"unknown nearest-neighbour method {method!r}: expected auto, exact or faiss"
    raise ValueError(msg)


class ExactIndex:
    """Exact Euclidean search by blocked float32 matrix products.

    Memory is bounded by the blocks (about 30 MB at a time), not by ``n``;
    time grows as ``n * m``.
    """

    def __init__(self, vectors: npt.NDArray[np.floating[Any]]) -> None:
        self.data = _as_matrix(vectors, "vectors")
        self.half_sq = 0.5 * np.einsum("ij,ij->i", self.data, self.data)

    def __len__(self) -> int:
        return len(self.data)

    def query(self, vectors: npt.NDArray[np.floating[Any]], k: int) -> Neighbours:
        """The ``k`` nearest indexed points of each row of ``vectors``."""
        queries = _as_matrix(vectors, "query vectors", self.data.shape[1])
        return self._search(queries, k, None)

    def query_all(self, k: int) -> Neighbours:
        """The ``k`` nearest other indexed points of every indexed point."""
        return self._search(self.data, k, np.arange(len(self.data)))

    def within(self, vectors: npt.NDArray[np.floating[Any]], radius: float) -> Pairs:
        """Every indexed point within ``radius`` of each row of ``vectors``."""
        queries = _as_matrix(vectors, "query vectors", self.data.shape[1])
        found: list[Pairs] = []
        limit = 0.5 * radius * radius
        for row in range(0, len(queries), _QUERY_BLOCK):
            q = queries[row : row + _QUERY_BLOCK]
            q_half = 0.5 * np.einsum("ij,ij->i", q, q)
            for col in range(0, len(self.data), _POINT_BLOCK):
                half = q_half[:, None] + self.half_sq[None, col : col + _POINT_BLOCK]
                half -= q @ self.data[col : col + _POINT_BLOCK].T
                rows, cols = np.nonzero(half <= limit)
                distances = np.sqrt(np.maximum(2 * half[rows, cols], 0)).astype(np.float32)
                found.append((rows + row, cols + col, distances))
        return _joined(found)

    def _search(
        self, queries: npt.NDArray[np.float32], k: int, self_positions: npt.NDArray[np.int64] | None
    ) -> Neighbours:
        _check_k(k)
        m, n = len(queries), len(self.data)
        positions = np.full((m, k), -1, np.int64)
        distances = np.full((m, k), np.inf, np.float32)
        for row in range(0, m, _QUERY_BLOCK):
            q = queries[row : row + _QUERY_BLOCK]
            q_half = 0.5 * np.einsum("ij,ij->i", q, q)
            best_d = np.full((len(q), k), np.inf, np.float32)
            best_p = np.full((len(q), k), -1, np.int64)
            for col in range(0, n, _POINT_BLOCK):
                # |q - x|^2 / 2 = |q|^2 / 2 + |x|^2 / 2 - q.x
                half = q_half[:, None] + self.half_sq[None, col : col + _POINT_BLOCK]
                half -= q @ self.data[col : col + _POINT_BLOCK].T
                if self_positions is not None:
                    mine = self_positions[row : row + _QUERY_BLOCK]
                    inside = (mine >= col) & (mine < col + half.shape[1])
                    half[np.flatnonzero(inside), mine[inside] - col] = np.inf
                if half.shape[1] > k:
                    part = np.argpartition(half, k - 1, axis=1)[:, :k]
                    half = np.take_along_axis(half, part, axis=1)
                    cols = part + col
                else:
                    cols = np.broadcast_to(np.arange(col, col + half.shape[1]), half.shape)
                best_d, best_p = _keep_smallest(
                    np.concatenate([best_d, half], axis=1),
                    np.concatenate([best_p, cols], axis=1),
                    k,
                )
            positions[row : row + len(q)] = best_p
            distances[row : row + len(q)] = np.sqrt(np.maximum(2 * best_d, 0))
        positions[~np.isfinite(distances)] = -1
        return positions, distances


class FaissIndex:
    """Approximate search with a faiss inverted-file index (``IndexIVFFlat``, L2).

    The points are split into ``n / IVF_POINTS_PER_LIST`` cells around centres drawn from
    the points themselves (a seeded sample: no k-means, whose cost grows with the square
    of the number of cells); the cells nearest a point are found through an HNSW graph
    over the centres (``IndexHNSWFlat``, built on one thread so the graph, and so every
    answer, is the same each time), and a query scans the :data:`IVF_PROBES` nearest
    cells exactly. On 300,000 digits of the scale benchmark this finds 91% of the exact 15
    nearest neighbours and 98% of those within 0.15 (the near-duplicate radius); the former
    flat index of ``4 sqrt(n)`` k-means centres found 94% and 99.6% in twice the CPU time,
    a gap that grows as ``sqrt(n)`` (``docs/scale.md``).
    """

    def __init__(
        self, vectors: npt.NDArray[np.floating[Any]], *, threads: int | None = None
    ) -> None:
        faiss = _import_faiss()
        if threads is not None:
            faiss.omp_set_num_threads(threads)
        self.data = _as_matrix(vectors, "vectors")
        n, d = self.data.shape
        lists = max(1, n // IVF_POINTS_PER_LIST)
        self.quantizer = faiss.IndexHNSWFlat(d, HNSW_LINKS)  # kept: the index refers to it
        self.quantizer.hnsw.efSearch = HNSW_SEARCH
        if n:
            centres = np.random.default_rng(IVF_SEED).choice(n, lists, replace=False)
            threads_before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                self.quantizer.add(self.data[np.sort(centres)])
            finally:
                faiss.omp_set_num_threads(threads_before)
        self.index = faiss.IndexIVFFlat(self.quantizer, d, lists)
        if n:  # trained already: the quantizer holds its ``lists`` centres
            self.index.add(self.data)
        self.index.nprobe = min(IVF_PROBES, lists)

    @classmethod
    def from_bytes(cls, blob: npt.NDArray[np.uint8], dimensions: int) -> FaissIndex:
        """An index :meth:`write` kept, without its points' vectors (so no
        :meth:`query_all`); :meth:`add` appends points after the kept ones."""
        faiss = _import_faiss()
        self = cls.__new__(cls)
        self.index = faiss.deserialize_index(np.ascontiguousarray(blob, np.uint8))
        self.quantizer = faiss.downcast_index(self.index.quantizer)
        self.quantizer.hnsw.efSearch = HNSW_SEARCH
        self.index.nprobe = min(IVF_PROBES, self.index.nlist)
        self.data = np.zeros((0, dimensions), np.float32)
        return self

    def release_points(self) -> None:
        """Let go of the points' own copy, kept for :meth:`query_all` (which then finds
        nothing); the index holds them too, and :meth:`query` still answers."""
        self.data = self.data[:0]

    def write(self, sink: Callable[[bytes], None]) -> None:
        """Hand the whole index (cells, their points, the centres' graph) to ``sink`` as
        bytes, in pieces, never all at once (:meth:`from_bytes` reads them back)."""
        faiss = _import_faiss()
        faiss.write_index(self.index, faiss.PyCallbackIOWriter(sink, 1 << 20))

    def add(self, vectors: npt.NDArray[np.floating[Any]]) -> None:
        """Append points to the cells of their nearest centres (the centres stay)."""
        points = _as_matrix(vectors, "vectors", self.data.shape[1])
        if len(points):
            self.index.add(points)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def query(self, vectors: npt.NDArray[np.floating[Any]], k: int) -> Neighbours:
        """The ``k`` nearest indexed points of each row of ``vectors`` (approximately)."""
        queries = _as_matrix(vectors, "query vectors", self.data.shape[1])
        return self._search(queries, k)

    def within(self, vectors: npt.NDArray[np.floating[Any]], radius: float) -> Pairs:
        """The indexed points within ``radius`` of each row of ``vectors`` that the
        :data:`IVF_PROBES` cells nearest it hold."""
        queries = _as_matrix(vectors, "query vectors", self.data.shape[1])
        if not len(self) or not len(queries):
            return _joined([])
        limits, squared, found = self.index.range_search(queries, radius * radius)
        rows = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(limits).astype(np.int64))
        distances = np.sqrt(np.maximum(squared, 0)).astype(np.float32)
        return rows, found.astype(np.int64), distances

    def query_all(self, k: int) -> Neighbours:
        """The ``k`` nearest other indexed points of every indexed point (approximately)."""
        positions, distances = self._search(self.data, k + 1)
        return _drop_self(positions, distances, k)

    def _search(self, queries: npt.NDArray[np.float32], k: int) -> Neighbours:
        _check_k(k)
        if not len(self) or not len(queries):
            return np.full((len(queries), k), -1, np.int64), np.full(
                (len(queries), k), np.inf, np.float32
            )
        squared, found = self.index.search(queries, k)
        distances = np.sqrt(np.maximum(squared, 0)).astype(np.float32)
        positions = found.astype(np.int64)
        distances[positions < 0] = np.inf
        return _sorted(positions, distances)


def faiss_available() -> bool:
    """Whether faiss can be imported (a core dependency; False only on a broken install)."""
    try:
        _import_faiss()
    except ImportError:
        return False
    return True


def _import_faiss() -> Any:
    # faiss's OpenMP threads spin while they wait for work by default; on a machine whose
    # cores other work shares, that spinning took the cores from the threads with work
    # (building and querying 200,000 points: 22-41 s of wall time spinning, 16-19 s
    # passive, 12-15 s of CPU either way; docs/scale.md). OpenMP reads this once, when faiss first
    # loads it; a value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss  # type: ignore[import-not-found, import-untyped, unused-ignore]

    return faiss


def _as_matrix(
    vectors: npt.NDArray[np.floating[Any]], name: str, width: int | None = None
) -> npt.NDArray[np.float32]:
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if data.ndim != 2 or (width is not None and data.shape[1] != width):
        expected = f"(m, {width})" if width is not None else "(n, d)"
        msg = f"{name} must have shape {expected}, got {data.shape}"
        raise ValueError(msg)
    return data


def _joined(found: list[Pairs]) -> Pairs:
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    rows, cols, distances = (np.concatenate(part) for part in zip(*found, strict=True))
    return rows.astype(np.int64), cols.astype(np.int64), distances.astype(np.float32)


def _check_k(k: int) -> None:
    if k < 1:
        msg = f"k must be at least 1, got {k}"
        raise ValueError(msg)


def _keep_smallest(
    distances: npt.NDArray[np.float32], positions: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Per row, the ``k`` smallest distances with their positions, sorted (ties by position)."""
    if distances.shape[1] > k:
        part = np.argpartition(distances, k - 1, axis=1)[:, :k]
        distances = np.take_along_axis(distances, part, axis=1)
        positions = np.take_along_axis(positions, part, axis=1)
    order = np.lexsort((positions, distances), axis=-1)
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(
        positions, order, axis=1
    )


def _sorted(positions: npt.NDArray[np.int64], distances: npt.NDArray[np.float32]) -> Neighbours:
    order = np.lexsort((positions, distances), axis=-1)
    return np.take_along_axis(positions, order, axis=1), np.take_along_axis(
        distances, order, axis=1
    )


def _drop_self(
    positions: npt.NDArray[np.int64], distances: npt.NDArray[np.float32], k: int
) -> Neighbours:
    """Remove each row's own position (or, if absent, its last hit), keeping ``k``."""
    rows = np.arange(len(positions))[:, None]
    is_self = positions == rows
    # Rows without a self hit (the graph search missed it) drop their farthest hit instead.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    keep = ~is_self
    return (
        positions[keep].reshape(len(positions), -1)[:, :k],
        distances[keep].reshape(len(positions), -1)[:, :k],
    )
