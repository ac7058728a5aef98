"""Open what a reader reads (a file, a zip member, gzip or xz inside either) with the
read budget watching: a zip member is checked before it is opened (encryption, method,
its declared ratio), and a decompressing stream counts the bytes it takes in and gives
out, so a bomb is refused a few dozen megabytes in. Text is read a bounded line at a time.
"""

from __future__ import annotations

import gzip
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Self, cast

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import GZIP_MAGIC, HashingReader

XZ_MAGIC = b"\xfd7zXZ\x00"

#: What a decompressor raises on corrupt or truncated data (BadGzipFile is an OSError).
DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its type, then its message with whitespace collapsed."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_member(
    archive: zipfile.ZipFile, member: str, where: str, budget: ReadBudget = DEFAULT_BUDGET
) -> IO[bytes]:
    """Open ``member`` of ``archive`` after checking it: not encrypted, a compression
    method this Python has, and a declared size within the budget's ratio.

    Raises
    ------
    SourceFormatError
        For a missing, encrypted or unreadable member (``where`` names it).
    OverBudgetError
        When it declares more than :attr:`ReadBudget.max_ratio` times its stored size.
    """
    try:
        info = archive.getinfo(member)
    except KeyError:
        msg = f"Cannot read {where}: no such member in the zip"
        raise SourceFormatError(msg) from None
    if info.flag_bits & 0x1:
        msg = f"Cannot read {where}: the member is encrypted; expected a plain zip"
        raise SourceFormatError(msg)
    budget.check_ratio(where, info.file_size, info.compress_size)
    try:
        return archive.open(info)
    except (NotImplementedError, RuntimeError) as exc:  # method unsupported, bz2/lzma missing
        msg = f"Cannot read {where}: {one_line(exc)}"
        raise SourceFormatError(msg) from None


class _Counting:
    """The compressed side of a stream: counts the bytes a decompressor takes in."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


class Opened:
    """A stream that closes what it was opened from; when it decompresses, it refuses
    to give out more than :attr:`ReadBudget.max_ratio` times what it took in."""

    def __init__(
        self,
        stream: IO[bytes],
        owned: list[Any],
        where: str,
        budget: ReadBudget,
        counting: _Counting | None = None,
    ) -> None:
        self.stream = stream
        self.owned = owned
        self.where = where
        self.budget = budget
        self.counting = counting
        self.given = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if self.counting is not None:
            self.given += len(data)
            self.budget.check_ratio(self.where, self.given, self.counting.count)
        return data

    def close(self) -> None:
        self.stream.close()
        for item in reversed(self.owned):
            item.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raw(path: Path, member: str | None, budget: ReadBudget) -> tuple[IO[bytes], list[Any]]:
    where = f"{path}!{member}" if member else str(path)
    if member is None:
        raw: IO[bytes] = path.open("rb")
        return raw, [raw]
    archive = zipfile.ZipFile(path)
    try:
        raw = open_member(archive, member, where, budget)
    except BaseException:
        archive.close()
        raise
    return raw, [archive, raw]


def open_stream(
    path: Path, member: str | None = None, budget: ReadBudget = DEFAULT_BUDGET
) -> tuple[BinaryIO, bool]:
    """Open ``path`` (or its zip ``member``) for reading, decompressing gzip or xz
    (QMNIST's xnist files); the flag says whether it was compressed.

    A compressed stream is refused (:class:`~catalog.errors.OverBudgetError`) once it
    has given more than ``budget.max_ratio`` times the compressed bytes it read.
    """
    where = f"{path}!{member}" if member else str(path)
    raw, owned = _raw(path, member, budget)
    try:
        head = raw.read(6)
        raw.seek(0)  # a file, or a zip member of a seekable archive: cheap this near the start
    except BaseException:
        for item in reversed(owned):
            item.close()
        raise
    counting = _Counting(raw)
    compressed = cast(IO[bytes], counting)
    if head[:2] == GZIP_MAGIC:
        stream: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=compressed, mode="rb"))
    elif head == XZ_MAGIC:
        stream = lzma.LZMAFile(compressed, "rb")  # noqa: SIM115 - closed by Opened
    else:
        return cast(BinaryIO, Opened(raw, owned[:-1], where, budget)), False
    return cast(BinaryIO, Opened(stream, owned, where, budget, counting)), True


def read_exact(stream: IO[bytes] | HashingReader, size: int, path: str | Path, what: str) -> bytes:
    """Read exactly ``size`` bytes, or raise a one-line error naming ``path``."""
    try:
        data = stream.read(size)
    except DECOMPRESS_ERRORS as exc:
        kind = "xz" if isinstance(exc, lzma.LZMAError) else "gzip"
        msg = f"Cannot read {path}: corrupt or truncated {kind} data while reading {what} ({exc})"
        raise SourceFormatError(msg) from None
    if len(data) != size:
        msg = f"{path} is truncated: expected {size:,} bytes of {what}, found {len(data):,}"
        raise SourceFormatError(msg)
    return data


def bounded_lines(
    stream: IO[bytes], where: str, budget: ReadBudget = DEFAULT_BUDGET
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, line without its newline)``, refusing a line longer than
    :attr:`ReadBudget.max_line_bytes` after reading only that much of it.

    ``stream`` must have ``readline(limit)`` (an :class:`io.BufferedReader`).
    """
    limit = budget.max_line_bytes
    number = 0
    while True:
        try:
            line = stream.readline(limit + 2)
        except DECOMPRESS_ERRORS as exc:
            msg = f"Cannot read {where}: {one_line(exc)} (reading line {number + 1:,})"
            raise SourceFormatError(msg) from None
        if not line:
            return
        number += 1
        text = line.rstrip(b"\r\n")
        if len(text) > limit:
            budget.refuse("max_line_bytes", f"{where} line {number:,} runs on")
        yield number, text
