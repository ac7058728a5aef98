"""Readers turn a source on disk into batches of decoded images.

Readers know files, not the database: each returns a :class:`Decoded` whose
``batches`` iterator yields numpy blocks, and whose ``files`` list is filled
with one :class:`SourceFile` per file read, as each file is finished.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from catalog.errors import InvalidNameError, SourceFormatError, UnknownFormatError

if TYPE_CHECKING:
    from catalog.budget import ReadBudget

#: Images per batch. 4096 MNIST images are 3.2 MB of pixels.
BATCH_SIZE = 4096

#: The label a reader gives an image published without one; stored as NULL.
UNLABELED = -1

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


def display(path: Path | str) -> str:
    """``path`` as printable text: bytes that are not UTF-8 shown as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_name(path: Path, where: Path | None = None) -> None:
    """Refuse a file name that is not UTF-8 text: the catalog stores it as text.

    Raises
    ------
    SourceFormatError
        Naming the file with its undecodable bytes escaped (``\\xff``).
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        inside = f" in {display(where)}" if where is not None else ""
        msg = f"Cannot read {display(path)}{inside}: its name is not UTF-8 text; rename it"
        raise SourceFormatError(msg) from None


@dataclass(frozen=True)
class Batch:
    """A block of images of one split, with their indices in that split."""

    split: str
    indices: npt.NDArray[np.int64]  # (n,) index of each image within its split
    labels: npt.NDArray[np.int64]  # (n,) >= 0, or UNLABELED
    pixels: npt.NDArray[np.uint8]  # (n, height, width), C-contiguous
    #: Per-image attributes the source carries (QMNIST's writer, a CSV's extra
    #: columns): key -> (n,) array of values (int or str); None in an object
    #: array means the image has no value for that key.
    meta: dict[str, npt.NDArray[Any]] = field(default_factory=dict)


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
    file_md5: str | None = None  # of the bytes on disk (the .gz itself), when known
    file_sha256: str | None = None


@dataclass
class Decoded:
    """What a reader returns: split sizes known up front, batches streamed."""

    format: str
    counts: dict[str, int]  # images per split, known before any batch is read
    batches: Iterator[Batch]
    files: list[SourceFile] = field(default_factory=list)
    #: Class names the source publishes (number -> name), e.g. an EMNIST mapping
    #: file or a parquet ClassLabel; None when the source names none.
    label_names: dict[int, str] | None = None
    #: The dataset name the source implies (``emnist-letters``), or None.
    dataset: str | None = None
    #: Warnings about the source that do not stop the ingest (lossy conversions).
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Reader(Protocol):
    """``read(path, budget=...)``: headers checked against the budget, batches streamed."""

    def __call__(self, path: Path, *, budget: ReadBudget = ...) -> Decoded: ...


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


PARQUET_MAGIC = b"PAR1"
#: File names that tell a family member apart from plain IDX or npz.
EMNIST_NAME = re.compile(r"^emnist-[a-z]+-(?:train|test)-images-idx3-ubyte(?:\.gz)?$")
QMNIST_NAME = re.compile(
    r"^(?:qmnist-(?:train|test)|xnist)-(?:labels-idx2-int|images-idx3-ubyte)(?:\.gz|\.xz)?$"
)
KMNIST_NPZ_NAME = re.compile(r"^[a-z0-9]+-(?:train|test)-imgs\.npz$")


def _named(fmt: str, folder: Path, name: str) -> bool:
    """True when a file called ``name`` in ``folder`` marks the folder as ``fmt``."""
    if fmt == "emnist":
        return EMNIST_NAME.match(name) is not None
    if fmt == "qmnist":
        return QMNIST_NAME.match(name) is not None
    if fmt == "idx":
        return "idx" in name and is_idx_header(peek(folder / name, 4))
    if fmt == "parquet":
        return name.endswith(".parquet")
    if fmt == "kmnist-npz":
        return KMNIST_NPZ_NAME.match(name) is not None
    return name.endswith((".csv", ".csv.gz")) and "classmap" not in name


def _detect_folder(path: Path) -> str:
    names = sorted(child.name for child in path.iterdir() if child.is_file())
    for fmt in ("emnist", "qmnist", "idx", "parquet", "kmnist-npz", "csv"):
        if any(_named(fmt, path, name) for name in names):
            return fmt
    # The Hugging Face layout keeps its shards one level down (data/, mnist/).
    for child in sorted(path.iterdir()):
        if child.is_dir() and any(p.suffix == ".parquet" for p in child.iterdir()):
            return "parquet"
    return "folder"


def _zip_members(path: Path) -> list[str]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        msg = f"Cannot read {path} as a zip archive: {exc}"
        raise SourceFormatError(msg) from None


def detect_format(path: Path) -> str:
    """Tell which reader handles ``path`` (a key of :data:`READERS`).

    The choice is made from content (magic bytes, zip member names, a CSV's
    first line), and for folders from the names of the files they hold.

    Raises
    ------
    UnknownFormatError
        When nothing recognisable is found.
    """
    check_name(path.absolute())
    if not path.exists():
        msg = f"Source not found: {path}"
        raise UnknownFormatError(msg)
    if path.is_dir():
        return _detect_folder(path)
    if not path.is_file():  # a FIFO would block the first read, /dev/zero never ends
        msg = f"Unknown format for {path}: it is not a regular file (a FIFO, socket or device)"
        raise UnknownFormatError(msg)
    head = peek(path, 16)
    if not head:
        msg = f"Source {path} is empty"
        raise UnknownFormatError(msg)
    if QMNIST_NAME.match(path.name):
        return "qmnist"
    if EMNIST_NAME.match(path.name):
        return "emnist"
    if is_idx_header(head):
        return "idx"
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    if head[:4] == ZIP_MAGIC:
        members = _zip_members(path)
        if any(EMNIST_NAME.match(m.rsplit("/", 1)[-1]) for m in members):
            return "emnist"
        if members == ["arr_0.npy"]:
            return "kmnist-npz"
        return "npz"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        return "pickle"
    if _looks_like_csv(peek(path, 64)):
        return "csv"
    msg = (
        f"Unknown format for {path}: expected IDX, pickle, npz, CSV, parquet, EMNIST, QMNIST "
        f"or a folder of images, found first bytes {head[:8].hex()}"
    )
    raise UnknownFormatError(msg)


def _looks_like_csv(head: bytes) -> bool:
    """A first line of fields separated by commas: ``label,pixel0,...`` or ``5,0,0,...``."""
    line = head.split(b"\n")[0].rstrip(b"\r")
    return line.count(b",") >= 2 and bool(re.fullmatch(rb"[A-Za-z0-9_,. \"x-]+", line))


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
    "csv": ("catalog.sources.csv_text", "read_csv"),
    "parquet": ("catalog.sources.parquet", "read_parquet"),
    "emnist": ("catalog.sources.emnist", "read_emnist"),
    "qmnist": ("catalog.sources.qmnist", "read_qmnist"),
    "kmnist-npz": ("catalog.sources.kuzushiji", "read_kuzushiji"),
}


def get_reader(fmt: str) -> Reader:
    """Return the reader registered for ``fmt`` (a key of :data:`READERS`)."""
    import importlib

    module, function = READERS[fmt]
    reader: Reader = getattr(importlib.import_module(module), function)
    return reader
