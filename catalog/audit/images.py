"""The images an audit looks at: one dataset's metadata in memory, its pixels streamed.

:class:`DatasetImages` holds what every check needs per image (id, split, index, label,
digest, size: about 120 bytes an image) and reads pixels from the catalog in blocks of
:attr:`DatasetImages.chunk` images when a check asks (:meth:`DatasetImages.blocks`), so an
audit's memory is set by its budget (:func:`chunk_for`), not by the number of images.
:meth:`DatasetImages.from_arrays` wraps arrays already in memory the same way (tests,
benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from catalog.audit.features import InkMeasures
from catalog.audit.findings import ImageRef
from catalog.audit.kept_ink import InkWork, ink_of
from catalog.curation.log import reviewed_ids
from catalog.db.models.images import Image
from catalog.db.types import bytewise
from catalog.facts.label_sets import label_set
from catalog.identity.signature import digests_from_hex_array
from catalog.select.filters import dataset_id, label_column, with_state
from catalog.select.reads import pixels_of
from catalog.selection import Selection
from catalog.sources import UNLABELED

__all__ = [
    "DEFAULT_MEMORY",
    "DatasetImages",
    "chunk_for",
    "load_images",
]

DEFAULT_MEMORY = 1 << 30
"""Default memory budget of an audit, in bytes (``audit --memory``)."""

#: Bytes of working memory per pixel of a block: the uint8 pixels and the few float32
#: copies a check makes of them (the embedding, the PCA, the exact distance).
_BYTES_PER_PIXEL = 32
_MIN_CHUNK, _MAX_CHUNK = 256, 16384
_META_CHUNK = 16384  # metadata rows converted to arrays at a time

AnySelect: TypeAlias = Select[*tuple[Any, ...]]
Positions = npt.NDArray[np.int64]
Pixels = npt.NDArray[np.uint8]


def chunk_for(memory: int, height: int, width: int) -> int:
    """Images per block so that a block's working copies take about an eighth of ``memory``.

    >>> chunk_for(1 << 30, 28, 28)
    5349
    >>> chunk_for(1 << 20, 28, 28)
    256
    """
    per_image = max(1, height * width) * _BYTES_PER_PIXEL
    return int(min(_MAX_CHUNK, max(_MIN_CHUNK, memory // 8 // per_image)))


@dataclass
class DatasetImages:
    """The audited images of one dataset, in (split, index) order: metadata, pixels on demand.

    Attributes
    ----------
    sha256
        Pixel digests as ASCII bytes (``S64``): a quarter of the memory of ``str``.
    shapes
        ``(n, 2)`` heights and widths.
    session
        Where :meth:`blocks` reads pixels from; None when ``pixels`` holds them.
    pixels
        All pixels in memory (:meth:`from_arrays`); None when they are read from ``session``.
    chunk
        Images per block that :meth:`blocks` yields.
    """

    name: str
    ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    sha256: npt.NDArray[np.bytes_]
    shapes: npt.NDArray[np.int64]
    session: Session | None = field(default=None, repr=False)
    pixels: Pixels | None = field(default=None, repr=False)
    chunk: int = 4096
    selected_splits: tuple[str, ...] = ()
    # ``labels`` are the current ones (after decisions); identity checks the source's.
    original_labels: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # relabelled, tagged "reviewed" or excluded: not judged
    reviewed: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    label_numbers: tuple[int, ...] = ()  # the dataset's label set
    streamable: bool = True  # all images of the query, in order (not a subset)
    ink_work: InkWork | None = None  # how :attr:`ink` was had, once it was
    version: str | None = None  # only this version's images, with its frozen labels

    def __post_init__(self) -> None:
        if len(self.original_labels) != len(self.ids):
            self.original_labels = self.labels.copy()
        if len(self.reviewed) != len(self.ids):
            self.reviewed = np.zeros(len(self.ids), bool)

    @classmethod
    def from_arrays(
        cls,
        pixels: Pixels,
        labels: npt.NDArray[np.int64],
        splits: Sequence[str] | npt.NDArray[np.str_],
        *,
        name: str = "arrays",
        chunk: int = 4096,
    ) -> DatasetImages:
        """Images held in memory (ids are positions; digests are of the pixels)."""
        import hashlib

        n = len(pixels)
        digests = [hashlib.sha256(image.tobytes()).hexdigest() for image in pixels]
        return cls(
            name, np.arange(n, dtype=np.int64), np.asarray(splits, dtype=np.str_),
            np.arange(n, dtype=np.int64), np.asarray(labels, dtype=np.int64),
            np.asarray(digests, dtype="S64"),
            np.tile(np.asarray(pixels.shape[1:3], np.int64), (n, 1)), None, pixels, chunk,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def digests(self) -> npt.NDArray[np.uint64]:
        """The first 64 bits of each image's sha256 (8 bytes an image), decoded once for
        the checks that tell images apart by id and pixels."""
        return digests_from_hex_array(self.sha256)

    @cached_property
    def shape(self) -> tuple[int, int] | None:
        """The images' common ``(height, width)``; None when sizes differ (see odd-images)."""
        if not len(self.shapes):
            return None
        first = self.shapes[0]
        if (self.shapes != first).any():
            return None
        return int(first[0]), int(first[1])

    def ref(self, i: int) -> ImageRef:
        label = int(self.labels[i])
        return ImageRef(
            self.name, str(self.splits[i]), int(self.indices[i]),
            None if label == UNLABELED else label, self.sha256[i].decode("ascii"),
        )  # fmt: skip

    def subset(self, keep: npt.NDArray[np.bool_]) -> DatasetImages:
        """The images where ``keep`` is true (their pixels then read by id)."""
        return DatasetImages(
            self.name, self.ids[keep], self.splits[keep], self.indices[keep], self.labels[keep],
            self.sha256[keep], self.shapes[keep], self.session,
            None if self.pixels is None else self.pixels[keep], self.chunk, self.selected_splits,
            self.original_labels[keep], self.reviewed[keep], self.label_numbers, streamable=False,
            version=self.version,
        )  # fmt: skip

    def refs(self, positions: Iterable[int]) -> list[ImageRef]:
        return [self.ref(int(i)) for i in positions]

    def blocks(self, positions: Positions | None = None) -> Iterator[tuple[Positions, Pixels]]:
        """Yield ``(positions, pixels)`` blocks of :attr:`chunk` images of uniform size.

        Parameters
        ----------
        positions
            Which images (positions into the metadata arrays, in any order); all when None.
            Blocks follow the order given.

        Raises
        ------
        ValueError
            If the images have different sizes.
        """
        if self.shape is None and len(self):
            msg = f"{self.name}: images of different sizes cannot be read in blocks"
            raise ValueError(msg)
        if positions is None and self.pixels is None and self.streamable:
            yield from self._stream_all()
            return
        wanted = np.arange(len(self)) if positions is None else np.asarray(positions, np.int64)
        for start in range(0, len(wanted), self.chunk):
            part = wanted[start : start + self.chunk]
            if self.pixels is not None:
                yield part, self.pixels[part]
            else:
                assert self.session is not None
                yield part, pixels_of(self.session, self.ids[part])

    def _stream_all(self) -> Iterator[tuple[Positions, Pixels]]:
        """All images in order, by one streaming query (no id lists)."""
        assert self.session is not None
        assert self.shape is not None
        statement, _ = _selected(
            self.session, self.name, self.selected_splits, Image.pixels, version=self.version
        )
        result = self.session.connection().execute(
            statement.execution_options(yield_per=self.chunk)
        )
        done = 0
        for rows in result.partitions(self.chunk):
            flat = np.frombuffer(b"".join(row[0] for row in rows), np.uint8)
            yield np.arange(done, done + len(rows)), flat.reshape(len(rows), *self.shape)
            done += len(rows)

    @cached_property
    def ink(self) -> InkMeasures:
        """Ink measures of every image (uniform sizes only), for every check: read back where
        an earlier audit kept them, the rest streamed once (:mod:`catalog.audit.kept_ink`)."""
        if self.shape is None:
            msg = f"{self.name}: images of different sizes have no ink measures"
            raise ValueError(msg)
        ink, self.ink_work = ink_of(self.session, self.name, self.ids, self.blocks, self.shape)
        return ink


def _selected(
    session: Session, name: str, splits: Sequence[str], *columns: Any, version: str | None = None
) -> tuple[AnySelect, int]:
    """The audit's one query: the images of ``splits`` (of ``version`` only, if given),
    their decision state joined, in (split, index) order; and the dataset's id."""
    ds = dataset_id(session, name)
    query: AnySelect = (
        with_state(select(*columns), Selection(version=version))
        .where(Image.dataset_id == ds)
        .order_by(bytewise(Image.split), Image.index)
    )
    if splits:
        query = query.where(Image.split.in_(splits))
    return query, ds


def load_images(
    session: Session,
    name: str,
    splits: Sequence[str],
    *,
    chunk: int = 4096,
    version: str | None = None,
) -> DatasetImages:
    """Read one dataset's image metadata (all, or of ``splits``; of ``version`` only, with
    its frozen labels, if given); pixels stay in the catalog."""
    label = label_column(Selection(version=version))  # the current label, or the frozen one
    statement, ds = _selected(
        session, name, splits, Image.id, Image.split, Image.index,
        func.coalesce(label, UNLABELED), Image.sha256, Image.height, Image.width,
        func.coalesce(Image.label, UNLABELED), version=version,
    )  # fmt: skip
    result = session.connection().execute(statement.execution_options(yield_per=_META_CHUNK))
    columns: list[list[npt.NDArray[Any]]] = [[] for _ in range(8)]
    dtypes: tuple[Any, ...] = (
        np.int64, np.str_, np.int64, np.int64, "S64", np.int64, np.int64, np.int64,
    )  # fmt: skip
    for rows in result.partitions(_META_CHUNK):
        for column, values, dtype in zip(columns, zip(*rows, strict=True), dtypes, strict=True):
            column.append(np.asarray(values, dtype=dtype))
    ids, split_names, indices, labels, digests, heights, widths, originals = (
        np.concatenate(c) if c else np.zeros(0, d) for c, d in zip(columns, dtypes, strict=True)
    )
    return DatasetImages(
        name=name, ids=ids, splits=split_names, indices=indices, labels=labels, sha256=digests,
        shapes=np.stack([heights, widths], axis=1), session=session, chunk=chunk,
        selected_splits=tuple(splits), original_labels=originals,
        reviewed=np.isin(ids, reviewed_ids(session)), label_numbers=label_set(session, ds).numbers,
        version=version,
    )  # fmt: skip
