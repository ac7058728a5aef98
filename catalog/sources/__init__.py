"""Readers turn a source on disk into batches of decoded images.

Readers know files, not the database: each returns a :class:`Decoded` whose
``batches`` iterator yields numpy blocks, and whose ``files`` list is filled
with one :class:`SourceFile` per file read, as each file is finished.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from catalog.errors import InvalidNameError, SourceFormatError, UnknownFormatError

#: Images per batch. 4096 MNIST images are 3.2 MB of pixels.
BATCH_SIZE = 4096

SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def check_split_name(split: str, where: str) -> str:
    """Return ``split`` if it is safe as a catalog key and a path component.

    Raises
    ------
    InvalidNameError
        When the name has characters other than lower-case letters, digits,
        ``_`` and ``-``, or does not start with a letter.
    """
    if not SPLIT_NAME.fullmatch(split):
        msg = (
            f"Invalid split name {split!r} in {where}: expected lower-case letters, "
            "digits, '_' or '-', starting with a letter"
        )
        raise InvalidNameError(msg)
    return split


@dataclass(frozen=True)
class Batch:
    """A block of images of one split, with their indices in that split."""

    split: str
    indices: npt.NDArray[np.int64]  # (n,) index of each image within its split
    labels: npt.NDArray[np.int64]  # (n,) 0-9
    pixels: npt.NDArray[np.uint8]  # (n, height, width), C-contiguous


@dataclass(frozen=True)
class SourceFile:
    """Provenance of one file that a reader decoded."""

    uri: str
    format: str
    size: int  # bytes on disk
    sha256: str  # of the decoded content (decompressed bytes)
    md5: str  # of the decoded content, the digest the MNIST site publishes
    role: str = ""  # e.g. "train images", "test labels"
    split: str | None = None  # the one split this file holds, None when several
    note: str | None = None  # e.g. how float pixels were scaled back to uint8


@dataclass
class Decoded:
    """What a reader returns: split sizes known up front, batches streamed."""

    format: str
    counts: dict[str, int]  # images per split, known before any batch is read
    batches: Iterator[Batch]
    files: list[SourceFile] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Reader(Protocol):
    def __call__(self, path: Path) -> Decoded: ...


GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def peek(path: Path, size: int = 16) -> bytes:
    """Return the first ``size`` bytes of ``path``, decompressed if it is gzip."""
    with path.open("rb") as raw:
        head = raw.read(size)
    if head[:2] != GZIP_MAGIC:
        return head
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"Cannot decompress {path}: not a valid gzip file ({exc})"
        raise SourceFormatError(msg) from None


def is_idx_header(head: bytes) -> bool:
    """True when ``head`` starts with an IDX magic number (0, 0, dtype, ndim)."""
    return (
        len(head) >= 4
        and head[0] == 0
        and head[1] == 0
        and head[2] in IDX_DTYPES
        and 1 <= head[3] <= 4
    )


#: IDX type codes and the numpy dtypes they name (big-endian).
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}


def detect_format(path: Path) -> str:
    """Tell which reader handles ``path``: ``idx``, ``pickle``, ``npz`` or ``folder``.

    The choice is made from content (magic bytes), not from the file name.

    Raises
    ------
    UnknownFormatError
        When nothing recognisable is found.
    """
    if not path.exists():
        msg = f"Source not found: {path}"
        raise UnknownFormatError(msg)
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and "idx" in child.name and is_idx_header(peek(child, 4)):
                return "idx"
        return "folder"
    head = peek(path, 16)
    if not head:
        msg = f"Source {path} is empty"
        raise UnknownFormatError(msg)
    if is_idx_header(head):
        return "idx"
    if head[:4] == ZIP_MAGIC:
        return "npz"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        return "pickle"
    msg = (
        f"Unknown format for {path}: expected IDX, pickle, npz or a folder of images, "
        f"found first bytes {head[:8].hex()}"
    )
    raise UnknownFormatError(msg)


class HashingReader:
    """Wrap a binary stream; count and hash everything read through it."""

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size)  # type: ignore[attr-defined]
        self.sha256.update(data)
        self.md5.update(data)
        self.bytes_read += len(data)
        return data

    def readline(self) -> bytes:
        data: bytes = self._stream.readline()  # type: ignore[attr-defined]
        self.sha256.update(data)
        self.md5.update(data)
        self.bytes_read += len(data)
        return data


#: Reader modules by format name; imported on first use.
READERS: dict[str, tuple[str, str]] = {
    "idx": ("catalog.sources.idx", "read_idx"),
    "pickle": ("catalog.sources.classic_pickle", "read_pickle"),
    "npz": ("catalog.sources.npz", "read_npz"),
    "folder": ("catalog.sources.folder", "read_folder"),
}


def get_reader(fmt: str) -> Reader:
    """Return the reader registered for ``fmt`` (a key of :data:`READERS`)."""
    import importlib

    module, function = READERS[fmt]
    reader: Reader = getattr(importlib.import_module(module), function)
    return reader
