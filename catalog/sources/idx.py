"""IDX files, raw or gzipped, as LeCun distributes MNIST (and Fashion-MNIST, KMNIST).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data. Headers
are validated (magic, dims, image/label counts, file length, and what they
declare against the read budget) before anything is allocated; images and
labels are then streamed side by side, in blocks sized in bytes.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import (
    BATCH_SIZE,
    IDX_DTYPES,
    Batch,
    Decoded,
    HashingReader,
    SourceFile,
    check_split_name,
)
from catalog.sources.guard import bounded
from catalog.sources.streams import DECOMPRESS_ERRORS, open_stream, read_exact

# train-images-idx3-ubyte, train-images.idx3-ubyte, t10k-labels-idx1-ubyte.gz, ...
IDX_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z0-9_-]+?)-(?P<role>images|labels)[.-]idx(?P<ndim>[13])-ubyte(?:\.gz)?$",
    re.ASCII,
)
SPLIT_PREFIXES = {"train": "train", "t10k": "test", "test": "test"}


@dataclass(frozen=True)
class IdxHeader:
    path: Path  # the file, or the zip archive that holds it as ``member``
    gzipped: bool  # compressed (gzip or xz)
    dtype: str
    dims: tuple[int, ...]
    header_size: int
    member: str | None = None

    @property
    def count(self) -> int:
        return self.dims[0]

    @property
    def row_bytes(self) -> int:
        """Bytes of one item (an image, a label, a row of QMNIST's label table)."""
        return int(np.prod(self.dims[1:], dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def name(self) -> str:
        """How messages name the file: ``path`` or ``archive.zip!member``."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)


def _stored_size(path: Path, member: str | None) -> int:
    """Bytes on disk: the file's, or the zip member's compressed size."""
    if member is None:
        return path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(member).compress_size


def read_header(
    path: Path, member: str | None = None, budget: ReadBudget = DEFAULT_BUDGET
) -> IdxHeader:
    """Read and check the header of an IDX file (not its data).

    Raises
    ------
    SourceFormatError
        On a wrong magic number, an unknown type code, or absurd dimensions.
    OverBudgetError
        When it declares more items, a longer side or (compressed) more bytes for its
        size than ``budget`` allows.
    """
    where = f"{path}!{member}" if member else str(path)
    try:
        stream, gzipped = open_stream(path, member, budget)
    except (OSError, zipfile.BadZipFile) as exc:
        msg = f"Cannot open {where}: {exc}"
        raise SourceFormatError(msg) from None
    with stream:
        magic = read_exact(stream, 4, where, "the IDX magic number")
        if magic[0] != 0 or magic[1] != 0:
            msg = f"{where} is not an IDX file: magic number {magic.hex()} should start with 0000"
            raise SourceFormatError(msg)
        if magic[2] not in IDX_DTYPES:
            msg = (
                f"{where} has unknown IDX type code 0x{magic[2]:02x}: expected one of "
                + ", ".join(f"0x{code:02x}" for code in IDX_DTYPES)
            )
            raise SourceFormatError(msg)
        ndim = magic[3]
        if not 1 <= ndim <= 3:
            msg = f"{where} declares {ndim} dimensions: expected 1 (labels) or 3 (images)"
            raise SourceFormatError(msg)
        dims = struct.unpack(f">{ndim}I", read_exact(stream, 4 * ndim, where, "the dimensions"))
    budget.check_images(dims[0], where, "items")
    if any(side < 1 for side in dims[1:]):
        msg = f"{where} claims images of {'x'.join(map(str, dims[1:]))}: sides must be 1 or more"
        raise SourceFormatError(msg)
    if len(dims) == 3:
        budget.check_side(dims[1], dims[2], where)
    elif len(dims) == 2 and dims[1] > budget.max_side:  # a table: QMNIST's N x 8 labels
        budget.refuse("max_side", f"{where} claims rows of {dims[1]:,} values")
    header = IdxHeader(path, gzipped, IDX_DTYPES[magic[2]], tuple(dims), 4 + 4 * ndim, member)
    if gzipped:  # a bomb is refused from its header, before any of it is inflated
        declared = header.header_size + header.count * header.row_bytes
        budget.check_ratio(where, declared, _stored_size(path, member))
    return header


def _check_length(header: IdxHeader) -> None:
    """For a raw file, the size on disk must be exactly header + data."""
    if header.gzipped or header.member is not None:
        return  # checked while streaming: a gzip's length is only known at its end
    expected = header.header_size + header.count * header.row_bytes
    found = header.path.stat().st_size
    if found != expected:
        msg = (
            f"{header.path} has {found:,} bytes but its header "
            f"({'x'.join(map(str, header.dims))}) implies {expected:,}"
        )
        raise SourceFormatError(msg)


def find_pairs(path: Path) -> list[tuple[str, Path, Path]]:
    """Find (split, images file, labels file) pairs for a folder or one images file."""
    candidates = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    pairs: list[tuple[str, Path, Path]] = []
    for candidate in candidates:
        match = IDX_NAME.match(candidate.name)
        if match is None or match["role"] != "images":
            continue
        prefix = match["prefix"]
        split = SPLIT_PREFIXES.get(prefix, prefix.lower())
        check_split_name(split, str(candidate))
        labels = _labels_beside(candidate)
        if labels is None:
            msg = f"No labels file found beside {candidate} (looked for {prefix}-labels-idx1-ubyte)"
            raise SourceFormatError(msg)
        pairs.append((split, candidate, labels))
    if not pairs:
        where = f"folder {path}" if path.is_dir() else str(path)
        msg = f"No IDX images file found in {where}: expected names like train-images-idx3-ubyte.gz"
        raise SourceFormatError(msg)
    splits = [split for split, _, _ in pairs]
    if len(set(splits)) != len(splits):
        msg = f"{path} holds more than one images file per split (e.g. both raw and .gz): {splits}"
        raise SourceFormatError(msg)
    return pairs


def _labels_beside(images: Path) -> Path | None:
    stem = images.name.replace("-images", "-labels").replace("idx3", "idx1")
    names = [stem]
    names.append(stem[:-3] if stem.endswith(".gz") else stem + ".gz")
    for name in names:
        candidate = images.with_name(name)
        if candidate.is_file():
            return candidate
    return None


@bounded
def read_idx(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Decode IDX image/label pairs from a folder, or one images file and its labels.

    All headers are checked before any data is read: magic number, type code,
    dimensions, that images and labels agree in count, that what they declare is
    within ``budget``, and (for raw files) that the length on disk matches.
    Gzipped files are checked to their end as they stream. Labels are whatever
    uint8 numbers the file holds (Fashion-MNIST, KMNIST and EMNIST use the same
    layout with their own classes).

    Raises
    ------
    SourceFormatError
        Whatever is wrong, naming the file.
    OverBudgetError
        When a file declares more than ``budget`` allows (a subclass of the above).
    """
    pairs = find_pairs(path)
    plans: list[tuple[str, IdxHeader, IdxHeader]] = []
    for split, images_path, labels_path in pairs:
        images = read_header(images_path, budget=budget)
        labels = read_header(labels_path, budget=budget)
        if len(images.dims) != 3 or images.dtype != ">u1":
            msg = (
                f"{images_path} should hold uint8 images (type 0x08, 3 dims), "
                f"found {images.dtype} with {len(images.dims)} dims"
            )
            raise SourceFormatError(msg)
        if len(labels.dims) != 1 or labels.dtype != ">u1":
            msg = (
                f"{labels_path} should hold uint8 labels (type 0x08, 1 dim), "
                f"found {labels.dtype} with {len(labels.dims)} dims"
            )
            raise SourceFormatError(msg)
        if images.count != labels.count:
            msg = (
                f"{images_path.name} has {images.count:,} images but "
                f"{labels_path.name} has {labels.count:,} labels"
            )
            raise SourceFormatError(msg)
        _check_length(images)
        _check_length(labels)
        plans.append((split, images, labels))
    budget.check_images(sum(images.count for _, images, _ in plans), str(path))
    decoded = Decoded(
        format="idx",
        counts={split: images.count for split, images, _ in plans},
        batches=iter(()),
    )
    decoded.batches = _stream(plans, decoded.files, budget)
    return decoded


def _stream(
    plans: list[tuple[str, IdxHeader, IdxHeader]], files: list[SourceFile], budget: ReadBudget
) -> Iterator[Batch]:
    for split, images, labels in plans:
        yield from stream_images(images, split, labels, files, budget=budget)


#: Turns a block of label rows into (labels, metadata); may check and raise.
LabelRows = Callable[[npt.NDArray[Any], int], tuple[npt.NDArray[np.int64], dict[str, Any]]]


def _plain_labels(
    rows: npt.NDArray[Any], start: int
) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    return rows.astype(np.int64), {}


class IdxRows:
    """An IDX file's items read a block at a time, hashed as they stream."""

    def __init__(self, header: IdxHeader, budget: ReadBudget) -> None:
        self.header = header
        stream, _ = open_stream(header.path, header.member, budget)
        self.stream: BinaryIO = stream
        self.hashing = HashingReader(stream)
        read_exact(self.hashing, header.header_size, header.name, "the header")

    def read(self, start: int, n: int, what: str) -> npt.NDArray[Any]:
        """Items ``start`` to ``start + n - 1``, shaped ``(n, *dims[1:])``."""
        data = read_exact(
            self.hashing,
            n * self.header.row_bytes,
            self.header.name,
            f"{what} {start}-{start + n - 1}",
        )
        return np.frombuffer(data, dtype=self.header.dtype).reshape(n, *self.header.dims[1:])

    def finish(self, role: str, fmt: str) -> SourceFile:
        """Check that the file ends where its header says; close it; its provenance."""
        _expect_end(self.hashing, self.header.name)
        self.stream.close()
        return _source_file(self.header, self.hashing, role, fmt)

    def close(self) -> None:
        self.stream.close()


def stream_images(
    header: IdxHeader,
    split: str,
    labels: IdxHeader,
    files: list[SourceFile],
    *,
    budget: ReadBudget = DEFAULT_BUDGET,
    transpose: bool = False,
    label_rows: LabelRows = _plain_labels,
    fmt: str = "idx",
) -> Iterator[Batch]:
    """Stream an IDX images file and its labels file side by side, in blocks of at
    most ``budget.max_block_bytes`` of pixels; ``transpose`` turns EMNIST's
    column-major images upright; ``label_rows`` turns each block of label rows into
    labels and per-image metadata (QMNIST's extended labels)."""
    _, height, width = header.dims
    rows = budget.block_rows(height * width, header.name, BATCH_SIZE)
    images, label_file = IdxRows(header, budget), IdxRows(labels, budget)
    try:
        for start in range(0, header.count, rows):
            n = min(rows, header.count - start)
            values, meta = label_rows(label_file.read(start, n, f"{split} labels"), start)
            pixels = images.read(start, n, "images")
            if transpose:
                pixels = np.ascontiguousarray(pixels.transpose(0, 2, 1))
            yield Batch(
                split=split,
                indices=np.arange(start, start + n, dtype=np.int64),
                labels=values,
                pixels=pixels,
                meta=meta,
            )
        files.append(label_file.finish(f"{split} labels", fmt))
        files.append(images.finish(f"{split} images", fmt))
    finally:
        images.close()
        label_file.close()


def _expect_end(stream: HashingReader, path: str) -> None:
    try:
        extra = stream.read(1)
    except DECOMPRESS_ERRORS as exc:
        msg = f"Cannot read {path}: corrupt or truncated gzip data at its end ({exc})"
        raise SourceFormatError(msg) from None
    if extra:
        msg = f"{path} has data past the end its header declares"
        raise SourceFormatError(msg)


def _source_file(
    header: IdxHeader, hashing: HashingReader, role: str, fmt: str = "idx"
) -> SourceFile:
    uri = str(header.path.resolve())
    size = header.path.stat().st_size
    if header.member is not None:
        uri += f"!{header.member}"
        size = _stored_size(header.path, header.member)
    suffix = ".xz" if header.member is None and header.path.suffix == ".xz" else ".gz"
    return SourceFile(
        uri=uri,
        format=fmt + suffix if header.gzipped else fmt,
        size=size,
        sha256=hashing.sha256.hexdigest(),
        md5=hashing.md5.hexdigest(),
        role=role,
        split=role.split()[0],
    )
