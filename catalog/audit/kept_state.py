"""A check's kept state: named blobs per (dataset, check), valid while their key matches.

:func:`read_state` returns the blobs an earlier audit kept for a check of a dataset, or
None when there are none or they were kept under another ``key`` (another method,
constants or selection: the check then works from scratch). :func:`write_state` replaces
some or all of them in one transaction, and returns False instead when the catalog
refuses the write (a read-only file, a role without INSERT): the audit's result does not
depend on it, only the next audit's time. Blobs are split into parts of :data:`PART`
bytes, so no single row holds a whole search index.

Arrays travel as :func:`pack` / :func:`unpack`; sorted id lists (:func:`pack_ids`) are
stored as zlib-compressed differences, a few kilobytes for a million consecutive ids.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.engine import write_if_allowed
from catalog.db.models.kept_states import KeptState

__all__ = [
    "PART",
    "Blob",
    "Writer",
    "find_ids",
    "pack",
    "pack_ids",
    "read_state",
    "unpack",
    "unpack_ids",
    "write_state",
]

PART = 16 << 20
"""Largest bytes of a blob kept in one row."""

Writer = Callable[[Callable[[bytes], None]], None]
"""A blob written in pieces: called with a function that takes each piece in turn."""
Blob = bytes | npt.NDArray[np.uint8] | Writer


def read_state(session: Session, dataset: int, check: str, key: str) -> dict[str, bytes] | None:
    """The blobs kept for ``check`` of ``dataset`` under ``key``, or None (none kept, or
    kept under another key)."""
    rows = session.connection().execute(
        select(KeptState.name, KeptState.key, KeptState.value)
        .where(KeptState.dataset_id == dataset, KeptState.check == check)
        .order_by(KeptState.name, KeptState.part)
    )
    parts: dict[str, list[bytes]] = {}
    for name, kept_key, value in rows:
        if kept_key != key:
            return None
        parts.setdefault(name, []).append(bytes(value))
    if not parts:
        return None
    return {name: b"".join(chunks) for name, chunks in parts.items()}


def write_state(
    session: Session,
    dataset: int,
    check: str,
    key: str,
    blobs: Mapping[str, Blob],
    *,
    replace_all: bool = True,
) -> bool:
    """Keep ``blobs`` for ``check`` of ``dataset`` under ``key`` and commit.

    A blob is bytes, a uint8 array, or a :data:`Writer` that hands its bytes over in
    pieces (a search index, never whole in memory twice). With ``replace_all`` every
    blob kept before for the check goes; without it only those named in ``blobs`` are
    replaced (the others must have been kept under the same key). Returns False,
    keeping nothing new, when the catalog refuses the write.
    """
    table = cast(Table, KeptState.__table__)
    old = delete(KeptState).where(KeptState.dataset_id == dataset, KeptState.check == check)
    if not replace_all:
        old = old.where(KeptState.name.in_(list(blobs)))

    def write() -> None:
        connection = session.connection()
        connection.execute(old)
        insert_rows = bulk_inserter(
            connection, table, ("dataset_id", "check", "name", "part", "key", "value")
        )
        for name, blob in blobs.items():
            parts = _Parts(insert_rows, (dataset, check, name), key)
            if callable(blob):
                blob(parts.add)
            else:
                parts.add(blob if isinstance(blob, bytes) else blob.tobytes())
            parts.close()

    kept, _ = write_if_allowed(session, write)
    return kept


class _Parts:
    """Bytes handed over in pieces, written as rows of :data:`PART` bytes (at least one)."""

    def __init__(
        self, insert_rows: Callable[[list[tuple[Any, ...]]], None], owner: tuple[Any, ...], key: str
    ) -> None:
        self.insert_rows, self.owner, self.key = insert_rows, owner, key
        self.buffer = bytearray()
        self.written = 0

    def write(self, part: int, value: bytes) -> None:
        self.insert_rows([(*self.owner, part, self.key, value)])

    def add(self, piece: bytes) -> None:
        self.buffer += piece
        while len(self.buffer) >= PART:
            self.write(self.written, bytes(self.buffer[:PART]))
            del self.buffer[:PART]
            self.written += 1

    def close(self) -> None:
        if self.buffer or not self.written:
            self.write(self.written, bytes(self.buffer))


def pack(**arrays: npt.NDArray[Any]) -> bytes:
    """Arrays as one blob (numpy's ``.npz`` format, uncompressed, no pickles)."""
    out = io.BytesIO()
    np.savez(out, allow_pickle=False, **arrays)
    return out.getvalue()


def unpack(blob: bytes) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a :func:`pack` blob."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def pack_ids(ids: npt.NDArray[np.int64]) -> bytes:
    """Image ids (any order) as compressed differences; :func:`unpack_ids` restores them."""
    ids = np.asarray(ids, np.int64)
    return zlib.compress(np.diff(ids, prepend=0).astype("<i8").tobytes(), 6)


def unpack_ids(blob: bytes) -> npt.NDArray[np.int64]:
    """The ids :func:`pack_ids` stored, in their order."""
    return np.cumsum(np.frombuffer(zlib.decompress(blob), "<i8")).astype(np.int64)


def find_ids(ids: npt.NDArray[np.int64], wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Position in ``ids`` (any order) of each of ``wanted``, or -1 where it is not there."""
    if not len(ids):
        return np.full(len(wanted), -1, np.int64)
    order = np.argsort(ids, kind="stable")
    at = order[np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)]
    return np.where(ids[at] == wanted, at, -1).astype(np.int64)
