"""IDX files, raw or gzipped, as LeCun distributes MNIST (and Fashion-MNIST, KMNIST).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data. Headers
are validated (magic, dims, image/label counts, file length) before anything
is allocated, and the images are streamed in blocks.
"""

from __future__ import annotations

import gzip
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self, cast

import numpy as np
import numpy.typing as npt

from catalog.errors import SourceFormatError
from catalog.sources import (
    BATCH_SIZE,
    GZIP_MAGIC,
    IDX_DTYPES,
    Batch,
    Decoded,
    HashingReader,
    SourceFile,
    check_split_name,
)

#: Largest image side we accept; MNIST-style data is 28x28.
MAX_SIDE = 1024
#: Largest number of images in one file (MNIST train has 60,000).
MAX_COUNT = 10_000_000

# train-images-idx3-ubyte, train-images.idx3-ubyte, t10k-labels-idx1-ubyte.gz, ...
IDX_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z0-9_-]+?)-(?P<role>images|labels)[.-]idx(?P<ndim>[13])-ubyte(?:\.gz)?$"
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
    def name(self) -> str:
        """How messages name the file: ``path`` or ``archive.zip!member``."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)


XZ_MAGIC = b"\xfd7zXZ\x00"


class _Opened:
    """A decompressing stream that closes what it was opened from."""

    def __init__(self, stream: BinaryIO, *owned: Any) -> None:
        self.stream = stream
        self.owned = owned

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def close(self) -> None:
        self.stream.close()
        for item in self.owned:
            item.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _head(path: Path, member: str | None) -> bytes:
    if member is None:
        with path.open("rb") as raw:
            return raw.read(6)
    with zipfile.ZipFile(path) as archive, archive.open(member) as raw:
        return raw.read(6)


def open_stream(path: Path, member: str | None = None) -> tuple[BinaryIO, bool]:
    """Open ``path`` (or its zip ``member``) for reading, decompressing gzip or xz
    (QMNIST's xnist files); the flag says whether it was compressed."""
    head = _head(path, member)
    owned: list[Any] = []
    if member is None:
        raw: BinaryIO = path.open("rb")
    else:
        archive = zipfile.ZipFile(path)
        owned.append(archive)
        raw = cast(BinaryIO, archive.open(member))
    owned.append(raw)
    if head[:2] == GZIP_MAGIC:
        stream: BinaryIO = cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    elif head == XZ_MAGIC:
        stream = cast(BinaryIO, lzma.LZMAFile(raw, "rb"))  # noqa: SIM115 - closed by _Opened
    else:
        return cast(BinaryIO, _Opened(raw, *owned[:-1])), False
    return cast(BinaryIO, _Opened(stream, *reversed(owned))), True


def read_exact(stream: BinaryIO | HashingReader, size: int, path: str | Path, what: str) -> bytes:
    """Read exactly ``size`` bytes, or raise a one-line error naming ``path``."""
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        kind = "xz" if isinstance(exc, lzma.LZMAError) else "gzip"
        msg = f"Cannot read {path}: corrupt or truncated {kind} data while reading {what} ({exc})"
        raise SourceFormatError(msg) from None
    if len(data) != size:
        msg = f"{path} is truncated: expected {size:,} bytes of {what}, found {len(data):,}"
        raise SourceFormatError(msg)
    return data


def read_header(path: Path, member: str | None = None) -> IdxHeader:
    """Read and check the header of an IDX file (not its data).

    Raises
    ------
    SourceFormatError
        On a wrong magic number, an unknown type code, or absurd dimensions.
    """
    where = f"{path}!{member}" if member else str(path)
    try:
        stream, gzipped = open_stream(path, member)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
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
    if dims[0] > MAX_COUNT:
        msg = f"{where} claims {dims[0]:,} items: more than the {MAX_COUNT:,} this reader accepts"
        raise SourceFormatError(msg)
    if any(not 1 <= side <= MAX_SIDE for side in dims[1:]):
        msg = f"{where} claims images of {'x'.join(map(str, dims[1:]))}: sides must be 1-{MAX_SIDE}"
        raise SourceFormatError(msg)
    return IdxHeader(path, gzipped, IDX_DTYPES[magic[2]], tuple(dims), 4 + 4 * ndim, member)


def _check_length(header: IdxHeader) -> None:
    """For a raw file, the size on disk must be exactly header + data."""
    if header.gzipped:
        return  # checked while streaming: a gzip's length is only known at its end
    itemsize = np.dtype(header.dtype).itemsize
    expected = header.header_size + int(np.prod(header.dims, dtype=np.int64)) * itemsize
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


def read_idx(path: Path) -> Decoded:
    """Decode IDX image/label pairs from a folder, or one images file and its labels.

    All headers are checked before any data is read: magic number, type code,
    dimensions, that images and labels agree in count, and (for raw files) that
    the length on disk matches. Gzipped files are checked to their end as they
    stream. Labels are whatever uint8 numbers the file holds (Fashion-MNIST,
    KMNIST and EMNIST use the same layout with their own classes).

    Raises
    ------
    SourceFormatError
        Whatever is wrong, naming the file.
    """
    pairs = find_pairs(path)
    plans: list[tuple[str, IdxHeader, IdxHeader]] = []
    for split, images_path, labels_path in pairs:
        images, labels = read_header(images_path), read_header(labels_path)
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
    decoded = Decoded(
        format="idx",
        counts={split: images.count for split, images, _ in plans},
        batches=iter(()),
    )
    decoded.batches = _stream(plans, decoded.files)
    return decoded


def _stream(
    plans: list[tuple[str, IdxHeader, IdxHeader]], files: list[SourceFile]
) -> Iterator[Batch]:
    for split, images, labels in plans:
        all_labels = read_array(labels, f"{split} labels", files).astype(np.int64)
        yield from stream_images(images, split, all_labels, files)


def read_array(
    header: IdxHeader, role: str, files: list[SourceFile], fmt: str = "idx"
) -> npt.NDArray[Any]:
    """Read a whole (small) IDX array, such as labels, and record its file."""
    stream, _ = open_stream(header.path, header.member)
    size = int(np.prod(header.dims, dtype=np.int64)) * np.dtype(header.dtype).itemsize
    with stream:
        hashing = HashingReader(stream)
        read_exact(hashing, header.header_size, header.name, "the header")
        data = read_exact(hashing, size, header.name, role)
        _expect_end(hashing, header.name)
    files.append(_source_file(header, hashing, role, fmt))
    return np.frombuffer(data, dtype=header.dtype).reshape(header.dims)


def stream_images(
    header: IdxHeader,
    split: str,
    labels: npt.NDArray[np.int64],
    files: list[SourceFile],
    *,
    transpose: bool = False,
    meta: dict[str, npt.NDArray[Any]] | None = None,
    fmt: str = "idx",
) -> Iterator[Batch]:
    """Stream an IDX images file in batches; ``transpose`` turns EMNIST's
    column-major images upright; ``meta`` holds per-image columns to slice along."""
    _, height, width = header.dims
    stream, _ = open_stream(header.path, header.member)
    with stream:
        hashing = HashingReader(stream)
        read_exact(hashing, header.header_size, header.name, "the header")
        for start in range(0, header.count, BATCH_SIZE):
            n = min(BATCH_SIZE, header.count - start)
            data = read_exact(
                hashing, n * height * width, header.name, f"images {start}-{start + n - 1}"
            )
            pixels = np.frombuffer(data, dtype=np.uint8).reshape(n, height, width)
            if transpose:
                pixels = np.ascontiguousarray(pixels.transpose(0, 2, 1))
            yield Batch(
                split=split,
                indices=np.arange(start, start + n, dtype=np.int64),
                labels=labels[start : start + n],
                pixels=pixels,
                meta={key: values[start : start + n] for key, values in (meta or {}).items()},
            )
        _expect_end(hashing, header.name)
    files.append(_source_file(header, hashing, f"{split} images", fmt))


def _expect_end(stream: HashingReader, path: str) -> None:
    extra = _read_exact_or_less(stream, path)
    if extra:
        msg = f"{path} has data past the end its header declares"
        raise SourceFormatError(msg)


def _read_exact_or_less(stream: HashingReader, path: str) -> bytes:
    try:
        return stream.read(1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        msg = f"Cannot read {path}: corrupt or truncated gzip data at its end ({exc})"
        raise SourceFormatError(msg) from None


def _source_file(
    header: IdxHeader, hashing: HashingReader, role: str, fmt: str = "idx"
) -> SourceFile:
    uri = str(header.path.resolve())
    size = header.path.stat().st_size
    if header.member is not None:
        uri += f"!{header.member}"
        with zipfile.ZipFile(header.path) as archive:
            size = archive.getinfo(header.member).compress_size
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
