"""Embeddings in the catalog: computed once per image and method, read back as arrays.

:func:`compute_embeddings` fills in the embeddings a selection lacks, streaming pixels from
the catalog ``chunk`` images at a time (memory is set by the chunk, not by the number of
images), so running it again after an ingest only embeds the new images.
:func:`load_embeddings` reads them back as an ``(n, d)`` array with the image ids.
Rows of another ``kind`` (an older method) are replaced when an image is embedded again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_inserter
from catalog.db.models.embeddings import Embedding
from catalog.db.models.images import Image
from catalog.select.filters import dataset_id
from catalog.select.ids import select_ids
from catalog.selection import Selection
from catalog.similarity.embed import DIMENSIONS, KIND, embed_pixels, from_bytes, to_bytes

__all__ = [
    "StoredEmbeddings",
    "compute_embeddings",
    "embed_images",
    "load_embeddings",
    "load_embeddings_of",
    "load_ids_of",
    "missing_ids",
]

CHUNK = 4096
"""Images read, embedded and written at a time."""

Progress = Callable[[int], None]


@dataclass(frozen=True)
class StoredEmbeddings:
    """Embeddings read from the catalog, aligned row by row with their image ids."""

    ids: npt.NDArray[np.int64]  # (n,)
    vectors: npt.NDArray[np.float32]  # (n, DIMENSIONS)
    kind: str = KIND

    def __len__(self) -> int:
        return len(self.ids)


def missing_ids(
    session: Session, selection: Selection | None = None, *, kind: str = KIND
) -> npt.NDArray[np.int64]:
    """Ids of the selected images without an embedding of ``kind``, in selection order.

    Raises
    ------
    DatasetNotFoundError, SelectionError
        If the selection names no dataset of the catalog or an unknown split.
    """
    selection = selection or Selection()
    ids = select_ids(session, selection)
    stored = _stored_ids(session, dataset_id(session, selection.dataset), kind)
    return ids[~np.isin(ids, stored)]


def compute_embeddings(
    session: Session,
    selection: Selection | None = None,
    *,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> int:
    """Embed the selected images that have no embedding of the current kind yet.

    Pixels are read ``chunk`` images at a time; images of different sizes may be mixed.
    Writes go through ``session`` (the caller commits).

    Parameters
    ----------
    session
        An open session on the catalog.
    selection
        Which images (default: all of the catalog's only dataset).
    chunk
        Images read, embedded and written at a time.
    progress
        Called with the number of images embedded, after each chunk.

    Returns
    -------
    int
        Number of images embedded (0 when all had one).

    Raises
    ------
    DatasetNotFoundError, SelectionError
        If the selection names no dataset of the catalog or an unknown split.
    """
    return _embed_and_store(session, missing_ids(session, selection), chunk, progress)


def embed_images(
    session: Session,
    image_ids: npt.NDArray[np.int64],
    *,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> int:
    """Embed the images ``image_ids`` that have no embedding of the current kind yet.

    Like :func:`compute_embeddings` for a known list of images (an audit's new ones),
    without listing the whole dataset's. Returns how many were embedded.
    """
    ids = np.asarray(image_ids, np.int64)
    return _embed_and_store(session, ids[~np.isin(ids, load_ids_of(session, ids))], chunk, progress)


def _embed_and_store(
    session: Session, todo: npt.NDArray[np.int64], chunk: int, progress: Progress | None
) -> int:
    """Embed the images ``todo`` (known to need it) and store their vectors, replacing
    any of another kind."""
    connection = session.connection()
    insert_rows = bulk_inserter(
        connection, cast(Table, Embedding.__table__), ("image_id", "kind", "vector")
    )
    for ids, vectors in _embed_blocks(session, todo, chunk):
        id_list = ids.tolist()
        stale = delete(Embedding).where(Embedding.image_id.in_(id_list), Embedding.kind != KIND)
        connection.execute(stale)
        insert_rows(list(zip(id_list, [KIND] * len(id_list), to_bytes(vectors), strict=True)))
        if progress is not None:
            progress(len(id_list))
    return len(todo)


def load_embeddings(
    session: Session, selection: Selection | None = None, *, kind: str = KIND
) -> StoredEmbeddings:
    """The stored embeddings of the selected images, in selection order.

    Images without an embedding of ``kind`` are left out (run :func:`compute_embeddings`
    first to have them all).

    Raises
    ------
    DatasetNotFoundError, SelectionError
        If the selection names no dataset of the catalog or an unknown split.
    """
    ids = select_ids(session, selection or Selection())
    return load_embeddings_of(session, ids, kind=kind)


def load_embeddings_of(
    session: Session, image_ids: npt.NDArray[np.int64] | list[int], *, kind: str = KIND
) -> StoredEmbeddings:
    """The stored embeddings of the images ``image_ids`` that have one, in that order."""
    ids = np.asarray(image_ids, dtype=np.int64)
    found_ids: list[npt.NDArray[np.int64]] = []
    found_vectors: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        columns = (Embedding.image_id, Embedding.vector)
        by_id = {
            int(row.image_id): row.vector
            for row in _rows_by_id(
                session, columns, Embedding.image_id, part, Embedding.kind == kind
            )
        }
        present = part[np.fromiter((i in by_id for i in part.tolist()), bool, len(part))]
        found_ids.append(present)
        found_vectors.append(from_bytes([by_id[i] for i in present.tolist()]))
    if not found_ids:
        return StoredEmbeddings(np.zeros(0, np.int64), np.zeros((0, DIMENSIONS), np.float32), kind)
    return StoredEmbeddings(np.concatenate(found_ids), np.concatenate(found_vectors), kind)


def load_ids_of(
    session: Session, image_ids: npt.NDArray[np.int64], *, kind: str = KIND
) -> npt.NDArray[np.int64]:
    """Which of ``image_ids`` have an embedding of ``kind`` (without reading the vectors)."""
    ids = np.asarray(image_ids, np.int64)
    found = [
        np.fromiter((row[0] for row in _rows_by_id(
            session, (Embedding.image_id,), Embedding.image_id, ids[start : start + CHUNK],
            Embedding.kind == kind)), np.int64)
        for start in range(0, len(ids), CHUNK)
    ]  # fmt: skip
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _stored_ids(session: Session, dataset_id: int, kind: str) -> npt.NDArray[np.int64]:
    stored = (
        select(Embedding.image_id)
        .join(Image, Image.id == Embedding.image_id)
        .where(Image.dataset_id == dataset_id, Embedding.kind == kind)
    )
    return np.fromiter(session.scalars(stored), dtype=np.int64)


def _embed_blocks(
    session: Session, ids: npt.NDArray[np.int64], chunk: int
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """Yield ``(ids, embeddings)`` for ``ids``, ``chunk`` images read at a time.

    A worker thread embeds one chunk while this one reads the next and the caller writes
    the last (numpy lets go of the GIL in the transform), so a second core is used.
    """
    columns = (Image.id, Image.height, Image.width, Image.pixels)
    ids = np.sort(ids)  # order does not matter here, and sorted chunks are ranges
    with ThreadPoolExecutor(1) as worker:
        pending: Future[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]] | None
        pending = None
        for start in range(0, len(ids), chunk):
            rows = list(_rows_by_id(session, columns, Image.id, ids[start : start + chunk]))
            by_shape: dict[tuple[int, int], list[Any]] = {}
            for row in rows:
                by_shape.setdefault((row.height, row.width), []).append(row)
            groups = [
                (
                    np.fromiter((row.id for row in group), np.int64, len(group)),
                    np.frombuffer(b"".join(row.pixels for row in group), np.uint8).reshape(
                        len(group), height, width
                    ),
                )
                for (height, width), group in by_shape.items()
            ]
            del rows, by_shape
            submitted = worker.submit(_embed_groups, groups)
            if pending is not None:
                yield from pending.result()
            pending = submitted
        if pending is not None:
            yield from pending.result()


def _embed_groups(
    groups: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]],
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    return [(group_ids, embed_pixels(pixels)) for group_ids, pixels in groups]


def _rows_by_id(
    session: Session,
    columns: tuple[Any, ...],
    id_column: Any,
    ids: npt.NDArray[np.int64],
    *where: Any,
) -> Iterator[Any]:
    """Rows whose ``id_column`` (the first of ``columns``) is in ``ids`` (any order, each once).

    Ids that fill most of their range (the usual case: images are numbered as ingested)
    are read as one range scan, which SQL compiles and runs faster than a long IN list;
    rows in the range but not in ``ids`` are skipped.
    """
    if not len(ids):
        return
    low, high = int(ids.min()), int(ids.max())
    if high - low + 1 <= 2 * len(ids):
        wanted = set(ids.tolist())
        statement = select(*columns).where(id_column >= low, id_column <= high, *where)
        for row in session.connection().execute(statement):
            if row[0] in wanted:
                yield row
        return
    statement = select(*columns).where(id_column.in_(ids.tolist()), *where)
    yield from session.connection().execute(statement)
