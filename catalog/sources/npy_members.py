"""Arrays stored as ``.npy`` members of a zip (an ``.npz``), read without ``np.load``.

``np.load`` inflates a whole member into memory: a 3.4 MB ``.npz`` of zeros once took
3.5 GB. Here, as Keras' npz reader does before it trusts a file, each member's header
is read first (:func:`numpy.lib.format.read_array_header_1_0`): object and structured
dtypes are refused (only unpickling could build them), the shape must fit in the bytes
the member declares, and the member's declared size must be within the read budget's
ratio of its compressed size. The data is then read a block of rows at a time
(:class:`NpyRows`); a member is checked to its end (its CRC) by :func:`verify` before
any block is yielded.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources.streams import one_line, open_member, read_exact

#: Largest array read from an npz whatever the budget (4 GiB): SQLite's blob limit is 1 GB
#: an image, and a block is far smaller.
MAX_ARRAY_BYTES = 4 * 1024**3

_CHUNK = 1 << 20


@dataclass(frozen=True)
class NpyMember:
    """An ``.npy`` member's header: what it holds and where its data starts."""

    path: Path  # the archive
    name: str  # the member, ``x_train.npy``
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # bytes of magic and header before the data

    @property
    def key(self) -> str:
        return self.name.removesuffix(".npy")

    @property
    def where(self) -> str:
        return f"{self.path}!{self.name}"

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(
    path: Path,
    archive: zipfile.ZipFile,
    name: str,
    where: str,
    budget: ReadBudget = DEFAULT_BUDGET,
    limit: int = MAX_ARRAY_BYTES,
) -> NpyMember:
    """Read and check the header of member ``name`` (not its data).

    ``where`` starts the messages (``Invalid npz mnist.npz``).

    Raises
    ------
    SourceFormatError
        For an unreadable header, a dtype that needs unpickling, a negative size, or
        a shape that claims more bytes than the member holds (or ``limit``).
    OverBudgetError
        When the member declares more than ``budget.max_ratio`` times its stored size.
    """
    key = name.removesuffix(".npy")
    info = archive.getinfo(name)
    with open_member(archive, name, f"{path}!{name}", budget) as stream:
        shape, fortran, dtype = _header(stream, where, key)
        offset = stream.tell()
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        msg = (
            f"Refusing to read {key} from {path}: it is an array of dtype {dtype}, which "
            "needs unpickling; expected a numeric array"
        )
        raise SourceFormatError(msg)
    needed = math.prod(shape) * dtype.itemsize
    if needed > min(info.file_size - offset, limit):
        msg = (
            f"{where}: {key} claims shape {shape} of {dtype} ({needed} bytes), "
            f"but its member holds {info.file_size} bytes (limit {limit})"
        )
        raise SourceFormatError(msg)
    return NpyMember(path, name, shape, dtype, fortran, offset)


def _header(stream: IO[bytes], where: str, key: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
    except ValueError as exc:
        msg = f"{where}: cannot read the header of {key} ({one_line(exc)})"
        raise SourceFormatError(msg) from None
    if any(n < 0 for n in shape):
        msg = f"{where}: expected a shape of non-negative sizes for {key}, found {shape}"
        raise SourceFormatError(msg)
    return shape, fortran, dtype


def verify(archive: zipfile.ZipFile, member: NpyMember, budget: ReadBudget) -> None:
    """Read ``member`` to its end a chunk at a time, so that a bad CRC or a truncated
    member is found before any of its blocks is yielded."""
    with open_member(archive, member.name, member.where, budget) as stream:
        while stream.read(_CHUNK):
            pass


def read_whole(archive: zipfile.ZipFile, member: NpyMember, budget: ReadBudget) -> npt.NDArray[Any]:
    """The whole array (labels: a few bytes an image, the count within the budget)."""
    with NpyRows(archive, member, budget) as rows:
        return rows.read(0, member.shape[0] if member.shape else 1, whole=True)


class NpyRows:
    """A member's rows (along its first axis) read a block at a time.

    A Fortran-ordered array's rows are not contiguous: it is read whole, when it fits
    in one block of the budget, and refused otherwise.
    """

    def __init__(self, archive: zipfile.ZipFile, member: NpyMember, budget: ReadBudget) -> None:
        self.member = member
        self.stream = open_member(archive, member.name, member.where, budget)
        self.stream.seek(member.offset)
        self.whole: npt.NDArray[Any] | None = None
        if member.fortran and len(member.shape) > 1:
            if member.nbytes > budget.max_block_bytes:
                claim = f"{member.where} is stored in Fortran order ({member.nbytes:,} bytes)"
                budget.refuse("max_block_bytes", claim)
            data = read_exact(self.stream, member.nbytes, member.where, "the array")
            flat = np.frombuffer(data, dtype=member.dtype)
            self.whole = np.ascontiguousarray(flat.reshape(member.shape, order="F"))

    def read(self, start: int, n: int, whole: bool = False) -> npt.NDArray[Any]:
        """Rows ``start`` to ``start + n - 1``, in C order."""
        shape = self.member.shape
        if self.whole is not None:
            return self.whole[start : start + n]
        if not shape:  # a 0-d array: its one value
            data = read_exact(self.stream, self.member.dtype.itemsize, self.member.where, "data")
            return np.frombuffer(data, dtype=self.member.dtype).reshape(())
        row = math.prod(shape[1:]) * self.member.dtype.itemsize
        what = "the array" if whole else f"rows {start}-{start + n - 1}"
        data = read_exact(self.stream, n * row, self.member.where, what)
        return np.frombuffer(data, dtype=self.member.dtype).reshape(n, *shape[1:])

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
