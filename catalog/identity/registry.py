"""Identity registries: per-image digests and signatures of a reference set.

A :class:`Registry` lists a reference set's images in canonical order (split,
then index) with their labels, digests and int8 signatures. One ships with the
package for genuine MNIST (:func:`load_shipped`); one can be built from any
dataset in a catalog (:func:`registry_from_dataset`), streamed in blocks.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.images import Dataset, Image
from catalog.errors import CatalogError, DatasetNotFoundError
from catalog.identity.signature import (
    MomentAccumulator,
    Pixels,
    Projection,
    digests_from_hex,
    pixel_digests,
)
from catalog.select.filters import CURRENT_LABEL, dataset_id, with_state
from catalog.sources import UNLABELED

DATA_DIR = Path(__file__).with_name("data")
#: Reference sets shipped with the package.
SHIPPED = ("mnist",)
#: The label identify compares: the current one (after relabel decisions), -1 for none.
LABEL = func.coalesce(CURRENT_LABEL, UNLABELED)
#: Rows per signature file, so each file stays under 1 MB.
SIGNATURE_ROWS_PER_FILE = 25_000
#: Images read per block when building a registry from a catalog.
BLOCK = 8192


class RegistryError(CatalogError):
    """A shipped identity registry is missing or damaged."""


@dataclass
class Registry:
    """A reference set in canonical order (split, index)."""

    name: str
    split_names: tuple[str, ...]
    split_codes: npt.NDArray[np.uint8]  # per image, into split_names
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    digests: npt.NDArray[np.uint64]
    signatures: npt.NDArray[np.int8]  # (n, dims)
    projection: Projection
    shape: tuple[int, int]
    #: Catalog ids of the images, when the registry was built from a catalog dataset.
    image_ids: npt.NDArray[np.int64] | None = None
    _order: npt.NDArray[np.int64] | None = field(default=None, repr=False)
    _floats: npt.NDArray[np.float32] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def split_of(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
        names = np.asarray(self.split_names, dtype=np.str_)
        return names[self.split_codes[positions]]

    def lookup(self, digests: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """Registry positions of images with these digests (-1 where none).

        When the reference holds the same pixels twice, the first in canonical
        order is returned.
        """
        if self._order is None:
            self._order = np.argsort(self.digests, kind="stable")
        ordered = self.digests[self._order]
        if len(ordered) == 0:
            return np.full(len(digests), -1, dtype=np.int64)
        at = np.searchsorted(ordered, digests, side="left")
        at = np.minimum(at, len(ordered) - 1)
        found = ordered[at] == digests
        return np.where(found, self._order[at], -1).astype(np.int64)

    def search_signatures(self) -> npt.NDArray[np.float32]:
        """The signatures as float32, one array per registry (search indexes key on it)."""
        if self._floats is None:
            self._floats = self.signatures.astype(np.float32)
        return self._floats

    def duplicated_positions(self) -> int:
        """How many reference images repeat an earlier one's pixels."""
        return len(self.digests) - len(np.unique(self.digests))


@dataclass(frozen=True)
class RefBlock:
    """Images of one split of a reference set, in index order."""

    split: str
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    pixels: Pixels
    digests: npt.NDArray[np.uint64] | None = None  # computed from pixels when None
    image_ids: npt.NDArray[np.int64] | None = None  # catalog ids, when from a catalog


def build_registry(name: str, blocks: Iterable[RefBlock]) -> Registry:
    """Build a registry from blocks in canonical order (split, index).

    ``blocks`` is iterated twice (statistics, then signatures), so memory stays
    bounded by one block plus the registry itself.
    """
    accumulator: MomentAccumulator | None = None
    shape: tuple[int, int] | None = None
    for block in blocks:
        if len(block.pixels) == 0:
            continue
        if accumulator is None:
            shape = (int(block.pixels.shape[1]), int(block.pixels.shape[2]))
            accumulator = MomentAccumulator(shape[0] * shape[1])
        accumulator.add(block.pixels)
    if accumulator is None or shape is None:
        msg = f"Cannot build an identity registry from {name!r}: it holds no images"
        raise CatalogError(msg)
    projection = accumulator.projection()
    split_names: list[str] = []
    codes, indices, labels, signatures, digests, ids = [], [], [], [], [], []
    for block in blocks:
        if block.split not in split_names:
            split_names.append(block.split)
        codes.append(np.full(len(block.indices), split_names.index(block.split), np.uint8))
        indices.append(block.indices)
        labels.append(block.labels)
        signatures.append(projection.quantise(projection.signatures(block.pixels)))
        digests.append(block.digests if block.digests is not None else pixel_digests(block.pixels))
        if block.image_ids is not None:
            ids.append(block.image_ids)
    return Registry(
        name=name,
        split_names=tuple(split_names),
        split_codes=np.concatenate(codes),
        indices=np.concatenate(indices).astype(np.int64),
        labels=np.concatenate(labels).astype(np.int64),
        digests=np.concatenate(digests).astype(np.uint64),
        signatures=np.concatenate(signatures),
        projection=projection,
        shape=shape,
        image_ids=np.concatenate(ids).astype(np.int64) if ids else None,
    )


# --- the shipped registry ------------------------------------------------------


def save_registry(registry: Registry, folder: Path) -> list[Path]:
    """Write ``registry`` as ``<name>-index.npz`` plus ``<name>-signatures-<k>.npy`` files."""
    sizes = [int((registry.split_codes == k).sum()) for k in range(len(registry.split_names))]
    expected = np.concatenate(
        [np.arange(n, dtype=np.int64) for n in sizes] or [np.zeros(0, np.int64)]
    )
    if not np.array_equal(registry.indices, expected):
        msg = f"Registry {registry.name}: each split must hold indices 0..n-1 in order to be saved"
        raise CatalogError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / f"{registry.name}-index.npz"
    buffer = io.BytesIO()
    np.savez(
        buffer,
        split_names=np.asarray(registry.split_names, dtype=np.str_),
        split_sizes=np.asarray(sizes, dtype=np.int64),
        labels=registry.labels.astype(np.uint8),
        digests=registry.digests,
        mean=registry.projection.mean,
        basis=registry.projection.basis,
        scale=np.float32(registry.projection.scale),
        shape=np.asarray(registry.shape, dtype=np.int32),
    )
    index_path.write_bytes(buffer.getvalue())
    written = [index_path]
    for k, start in enumerate(range(0, len(registry), SIGNATURE_ROWS_PER_FILE)):
        path = folder / f"{registry.name}-signatures-{k}.npy"
        np.save(path, registry.signatures[start : start + SIGNATURE_ROWS_PER_FILE])
        written.append(path)
    return written


def load_registry(folder: Path, name: str) -> Registry:
    """Read a registry written by :func:`save_registry`."""
    index_path = folder / f"{name}-index.npz"
    if not index_path.exists():
        msg = f"Identity registry {index_path} is missing: reinstall mnist-catalog"
        raise RegistryError(msg)
    with np.load(index_path, allow_pickle=False) as data:
        parts = dict(data.items())
    n = len(parts["digests"])
    chunks = [
        np.load(folder / f"{name}-signatures-{k}.npy", allow_pickle=False)
        for k in range((n + SIGNATURE_ROWS_PER_FILE - 1) // SIGNATURE_ROWS_PER_FILE)
    ]
    signatures = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.int8)
    if len(signatures) != n:
        msg = f"Identity registry {name} in {folder}: {len(signatures)} signatures for {n} images"
        raise RegistryError(msg)
    shape = tuple(int(v) for v in parts["shape"])
    sizes = [int(v) for v in parts["split_sizes"]]
    return Registry(
        name=name,
        split_names=tuple(str(s) for s in parts["split_names"]),
        split_codes=np.repeat(np.arange(len(sizes), dtype=np.uint8), sizes),
        indices=np.concatenate([np.arange(k, dtype=np.int64) for k in sizes]),
        labels=parts["labels"].astype(np.int64),
        digests=parts["digests"].astype(np.uint64),
        signatures=signatures.astype(np.int8),
        projection=Projection(
            parts["mean"].astype(np.float32),
            parts["basis"].astype(np.float32),
            float(parts["scale"]),
        ),
        shape=(shape[0], shape[1]),
    )


_SHIPPED_CACHE: dict[str, Registry] = {}


def load_shipped(name: str = "mnist") -> Registry:
    """The registry shipped with the package for ``name`` (cached per process)."""
    if name not in SHIPPED:
        msg = f"No shipped identity registry {name!r}: expected one of {', '.join(SHIPPED)}"
        raise CatalogError(msg)
    if name not in _SHIPPED_CACHE:
        _SHIPPED_CACHE[name] = load_registry(DATA_DIR, name)
    return _SHIPPED_CACHE[name]


# --- registries from a catalog --------------------------------------------------


class DatasetBlocks:
    """A catalog dataset's images as :class:`RefBlock` s, re-read on each iteration."""

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.dataset = dataset_id(session, name)

    def __iter__(self) -> Iterator[RefBlock]:
        query = (
            with_state(select(Image.id, Image.split, Image.index, LABEL, Image.sha256,
                              Image.height, Image.width, Image.pixels))
            .where(Image.dataset_id == self.dataset)
            .order_by(Image.split, Image.index)
        )  # fmt: skip
        result = self.session.connection().execute(query.execution_options(yield_per=BLOCK))
        for rows in result.partitions(BLOCK):
            start = 0
            while start < len(rows):  # one block per split
                stop = start
                while stop < len(rows) and rows[stop][1] == rows[start][1]:
                    stop += 1
                yield _ref_block(rows[start:stop])
                start = stop


def _ref_block(rows: Sequence[Any]) -> RefBlock:
    shapes = {(r[5], r[6]) for r in rows}
    if len(shapes) > 1:
        msg = f"Reference images have sizes {sorted(shapes)}: identify needs one size"
        raise CatalogError(msg)
    h, w = shapes.pop()
    n = len(rows)
    pixels = np.frombuffer(b"".join(r[7] for r in rows), dtype=np.uint8)
    return RefBlock(
        split=str(rows[0][1]),
        indices=np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
        labels=np.fromiter((r[3] for r in rows), dtype=np.int64, count=n),
        pixels=pixels.reshape(n, h, w),
        digests=digests_from_hex([r[4] for r in rows]),
        image_ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
    )


def registry_from_dataset(session: Session, name: str) -> Registry:
    """A registry of dataset ``name`` in the catalog, read in two streamed passes."""
    try:
        blocks = DatasetBlocks(session, name)
    except DatasetNotFoundError:
        names = ", ".join(sorted(session.scalars(select(Dataset.name)))) or "none"
        msg = (
            f"Cannot identify against {name!r}: expected {' or '.join(SHIPPED)} (shipped) "
            f"or a dataset of the catalog (datasets: {names})"
        )
        raise DatasetNotFoundError(msg) from None
    return build_registry(name, blocks)
