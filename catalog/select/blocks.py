"""The lean read path of pixels: rows of a selection into numpy blocks.

Every consumer of pixels (exports, ``.arrays()``, the dataset object, contact
sheets) reads them through here, so this is the loop that runs once per image
on the way out of the catalog. It keeps per-row Python work to a minimum:

- the statement's columns are read untyped (``type_coerce(column, NullType())``),
  so SQLAlchemy hands the driver's values through without a result processor
  per value: ints, strings and the pixels' ``bytes`` on both SQLite and
  PostgreSQL (psycopg returns ``bytea`` as ``bytes``);
- rows are fetched a chunk at a time, streamed on PostgreSQL
  (``stream_results``: a server-side cursor, so memory stays a chunk), and
  transposed into columns with one ``zip``;
- the pixels of a chunk become one array from one ``b"".join``.

Measured on 60,000 MNIST rows (SQLite): reading through ORM-typed rows and
per-row attribute access cost about 3x a raw ``sqlite3`` fetch of the same
blobs; this path is within a few tens of percent of it (``benchmarks/outputs.py``,
``docs/scale.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Select, type_coerce
from sqlalchemy.types import NullType

from catalog.errors import SelectionError
from catalog.select.records import PixelBlock
from catalog.sources import UNLABELED

__all__ = ["block_of", "stream_arrays", "stream_rows", "untyped"]

AnySelect: TypeAlias = Select[*tuple[Any, ...]]


def untyped(statement: AnySelect) -> AnySelect:
    """``statement`` with its columns read as the driver returns them (no result
    processing; the columns keep their order, their names do not matter)."""
    return statement.with_only_columns(
        *(type_coerce(column, NullType()) for column in statement.selected_columns)
    )


def stream_rows(
    connection: Connection, statement: AnySelect, chunk: int
) -> Iterator[Sequence[Any]]:
    """The rows of ``statement`` (untyped), ``chunk`` at a time, streamed."""
    result = connection.execute(untyped(statement), execution_options={"stream_results": True})
    try:
        while rows := result.fetchmany(chunk):
            yield rows
    finally:
        result.close()


def _labels(values: Sequence[int | None]) -> npt.NDArray[np.int64]:
    if None in values:
        return np.array([UNLABELED if v is None else v for v in values], dtype=np.int64)
    return np.array(values, dtype=np.int64)


def _shape(heights: Sequence[int], widths: Sequence[int]) -> tuple[int, int]:
    shapes = set(zip(heights, widths, strict=True))
    if len(shapes) > 1:
        msg = f"Selected images have different sizes {sorted(shapes)}: select one size at a time"
        raise SelectionError(msg)
    return shapes.pop() if shapes else (0, 0)


def block_of(rows: Sequence[Sequence[Any]]) -> PixelBlock:
    """A block from rows of (id, dataset id, split, index, label, source label,
    excluded, decision, sha256, height, width, pixels), in that order."""
    n = len(rows)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PixelBlock(
            empty, empty, [], empty, empty, [], np.zeros((0, 0, 0), np.uint8), empty, empty
        )
    (ids, datasets, splits, indices, labels, originals, _, decisions, sha256, heights, widths,
     pixels) = zip(*rows, strict=True)  # fmt: skip
    height, width = _shape(heights, widths)
    flat = np.frombuffer(b"".join(pixels), dtype=np.uint8)
    return PixelBlock(
        ids=np.array(ids, dtype=np.int64),
        dataset_ids=np.array(datasets, dtype=np.int64),
        splits=list(splits),
        indices=np.array(indices, dtype=np.int64),
        labels=_labels(labels),
        sha256=list(sha256),
        pixels=flat.reshape(n, height, width),
        original_labels=_labels(originals),
        decisions=np.array([d or 0 for d in decisions], dtype=np.int64),
    )


def stream_arrays(
    connection: Connection, statement: AnySelect, chunk: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """All pixels and labels of ``statement``'s rows of (label, height, width, pixels)
    as one writable ``(N, H, W)`` uint8 array and int64 labels."""
    blobs: list[bytes] = []
    labels: list[int | None] = []
    heights: list[int] = []
    widths: list[int] = []
    for rows in stream_rows(connection, statement, chunk):
        part_labels, part_heights, part_widths, part_pixels = zip(*rows, strict=True)
        labels += part_labels
        heights += part_heights
        widths += part_widths
        blobs += part_pixels
    if not blobs:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    height, width = _shape(heights, widths)
    # One copy of the pixels, into a buffer numpy may write to (training code does).
    pixels = np.frombuffer(bytearray().join(blobs), dtype=np.uint8)
    return pixels.reshape(len(blobs), height, width), _labels(labels)
