"""Unpickle numpy arrays without running anything from the file.

A pickle names any importable callable (``os.system``, ``builtins.eval``) and
the arguments to call it with, and :func:`pickle.load` calls it while loading.
:func:`load` never does. It reads the file twice, in memory:

1. :func:`scan` walks every opcode with :func:`pickletools.genops` before
   anything is built. It refuses opcodes outside :data:`ALLOWED_OPCODES`, globals
   outside :data:`ALLOWED_GLOBALS`, memo indices beyond the entries stored so far
   (the C unpickler grows its memo to the largest index named), and any length
   claim larger than the bytes that follow (``genops`` reads the claimed bytes,
   in chunks, and fails when fewer are there). So once the scan passes, every
   allocation the unpickler makes is backed by bytes the file really holds.
2. :class:`RestrictedUnpickler` (the standard :class:`pickle.Unpickler`) builds
   the result; its ``find_class`` answers the allowed names with stand-ins that
   check their arguments and build arrays with :func:`numpy.frombuffer`, so
   numpy's own ``__setstate__`` (which accepts object dtypes and dtype flags)
   never runs and only plain bool, integer and float arrays can be made.

The decompressed stream is read in chunks and refused past the caller's limit,
or when it inflates past the read budget's ratio; the scan stops after
:data:`MAX_OPCODES` opcodes (a pickle of numpy arrays has a few dozen per array:
a file of 0.6 MB of ``DUP`` once took 20 minutes of CPU and grew the stack).
"""

from __future__ import annotations

import gzip
import pickle
import pickletools
import struct
import sys
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol, cast

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import CatalogError, SourceFormatError, UnsafePickleError
from catalog.sources import GZIP_MAGIC, HashingReader
from catalog.sources.pickle_standins import ALLOWED_GLOBALS, StandIn, shorten

_CHUNK = 1 << 20

#: Most opcodes a pickle may hold. Three (images, labels) pairs of numpy arrays take
#: 145 (protocol 5) to 264 (protocol 0); the scan costs about 2 us an opcode.
MAX_OPCODES = 10_000

#: Opcodes that numpy arrays in tuples, lists and dicts are written with, at
#: protocols 0 to 5. Refused: extension codes (they reach objects other loads
#: cached), persistent ids, INST / OBJ / NEWOBJ (class instantiation) and
#: out-of-band buffers.
ALLOWED_OPCODES = frozenset(
    {
        "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
        "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2",
        "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES",
        "BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
        "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST",
        "APPEND", "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
        "EMPTY_SET", "ADDITEMS", "FROZENSET",
        "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
        "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
    }
)  # fmt: skip

_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})

#: What a malformed opcode stream can raise from the scan, the unpickler or a stand-in.
MALFORMED = (
    pickle.UnpicklingError,
    struct.error,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    ArithmeticError,
    MemoryError,
    RecursionError,
)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


class _Pickled(Protocol):
    """What the scan and the unpickler read from: ``read(n)`` and ``readline()``."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self) -> bytes: ...


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its type, then its message with whitespace collapsed."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _BoundedStream:
    """Read a binary stream in chunks, refusing to go past ``limit`` bytes.

    The scan asks for as many bytes as an opcode claims; reading in chunks
    means a claim of terabytes costs only what the file really holds.
    """

    def __init__(
        self,
        stream: _Readable,
        path: Path,
        gz: bool,
        limit: int,
        budget: ReadBudget = DEFAULT_BUDGET,
        compressed: Callable[[], int] | None = None,
    ) -> None:
        self._stream = stream
        self._path = path
        self._gz = gz
        self._limit = limit
        self._budget = budget
        self._compressed = compressed  # bytes of the file read so far, when gzipped
        self.total = 0

    def _call(self, method: Callable[[int], bytes], size: int) -> bytes:
        try:
            data = method(size)
        except (OSError, EOFError, zlib.error) as exc:
            if self._gz:
                msg = f"Cannot decompress {self._path}: corrupt or truncated gzip data ({one_line(exc)})"
            else:
                msg = f"Cannot read {self._path}: {one_line(exc)}"
            raise SourceFormatError(msg) from None
        self.total += len(data)
        if self.total > self._limit:
            msg = (
                f"Refusing to unpickle {self._path}: expected at most {self._limit} bytes "
                "of pickle data, found more"
            )
            raise SourceFormatError(msg)
        if self.total > self._budget.max_pickle_bytes:
            claim = f"{self._path} is a pickle of {self.total:,} bytes so far"
            self._budget.refuse("max_pickle_bytes", claim)
        if self._compressed is not None:
            self._budget.check_ratio(str(self._path), self.total, self._compressed())
        return data

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        remaining = size if size >= 0 else None
        while remaining is None or remaining > 0:
            want = _CHUNK if remaining is None else min(_CHUNK, remaining)
            data = self._call(self._stream.read, want)
            if not data:
                break
            parts.append(data)
            if remaining is not None:
                remaining -= len(data)
        return b"".join(parts)

    def readline(self) -> bytes:
        most = min(self._limit, self._budget.max_pickle_bytes) - self.total + 1
        return self._call(self._stream.readline, max(most, 1))


class _Recorder:
    """Keep everything read through it, for the unpickler's pass after the scan.

    Large reads (array data) are kept as the very objects read, small ones are
    gathered into shared blocks, so keeping costs about what the file holds.
    """

    def __init__(self, stream: HashingReader) -> None:
        self._stream = stream
        self.chunks: deque[bytes | bytearray] = deque()
        self._small = bytearray()
        self.total = 0

    def _keep(self, chunk: bytes) -> bytes:
        self.total += len(chunk)
        if len(chunk) >= _CHUNK:
            self._flush()
            self.chunks.append(chunk)
        else:
            self._small += chunk
            if len(self._small) >= _CHUNK:
                self._flush()
        return chunk

    def _flush(self) -> None:
        if self._small:
            self.chunks.append(self._small)
            self._small = bytearray()

    def read(self, size: int = -1) -> bytes:
        return self._keep(self._stream.read(size))

    def readline(self) -> bytes:
        return self._keep(self._stream.readline())

    def tell(self) -> int:
        return self.total

    def replay(self) -> _Replay:
        """A reader over what was kept; it lets go of each chunk once read."""
        self._flush()
        chunks, self.chunks = self.chunks, deque()
        return _Replay(chunks)


class _Replay:
    """A read-only file over kept chunks, freeing each one as soon as it is read."""

    def __init__(self, chunks: deque[bytes | bytearray]) -> None:
        self._chunks = chunks
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        want = size if size >= 0 else sys.maxsize
        while want > 0 and self._chunks:
            head = self._chunks[0]
            if self._offset == 0 and isinstance(head, bytes) and len(head) <= want:
                piece = head  # a whole large chunk: hand over the object itself
            else:
                with memoryview(head) as view:
                    piece = bytes(view[self._offset : self._offset + want])
            parts.append(piece)
            want -= len(piece)
            self._offset += len(piece)
            if self._offset == len(head):
                self._chunks.popleft()
                self._offset = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self) -> bytes:
        parts: list[bytes] = []
        while self._chunks:
            head = self._chunks[0]
            end = head.find(b"\n", self._offset)
            parts.append(self.read((len(head) if end < 0 else end + 1) - self._offset))
            if end >= 0:
                break
        return b"".join(parts)


def scan(path: Path, stream: _Pickled) -> None:
    """Walk every opcode of the pickle in ``stream``; refuse what :func:`load` would not build.

    Raises
    ------
    UnsafePickleError
        For an opcode outside :data:`ALLOWED_OPCODES` or a global outside
        :data:`ALLOWED_GLOBALS`.
    SourceFormatError
        For a memo index beyond the entries stored so far, a length claim larger
        than the bytes that follow, or anything else that does not parse.
    """
    stored = 0
    try:
        # genops calls only read, readline and (when present) tell.
        opcodes = pickletools.genops(cast("IO[bytes]", stream))
        for count, (opcode, arg, pos) in enumerate(opcodes, start=1):
            if count > MAX_OPCODES:
                msg = (
                    f"Refusing to unpickle {path}: it holds more than {MAX_OPCODES:,} opcodes "
                    f"(by byte {pos}), where numpy arrays take a few dozen each"
                )
                raise SourceFormatError(msg)
            name = opcode.name
            if name not in ALLOWED_OPCODES:
                msg = (
                    f"Refusing to unpickle {path}: it uses pickle opcode {name} at byte {pos}, "
                    "but only numpy arrays are allowed"
                )
                raise UnsafePickleError(msg)
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                _refuse_unless_allowed(path, module, attr)
            elif name in _PUTS:
                if not isinstance(arg, int) or not 0 <= arg <= stored:
                    msg = (
                        f"Invalid pickle {path}: expected a memo index of at most {stored} "
                        f"at byte {pos}, found {shorten(arg)}"
                    )
                    raise SourceFormatError(msg)
                stored += 1
            elif name == "MEMOIZE":
                stored += 1
    except CatalogError:
        raise
    except MALFORMED as exc:
        msg = f"Cannot unpickle {path}: {one_line(exc)}"
        raise SourceFormatError(msg) from None


def _refuse_unless_allowed(path: Path, module: str, name: str) -> Callable[..., object]:
    func = ALLOWED_GLOBALS.get((module, name))
    if func is None:
        msg = (
            f"Refusing to unpickle {path}: it references {module}.{name}, "
            "but only numpy arrays are allowed"
        )
        raise UnsafePickleError(msg)
    return func


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild plain numpy arrays, tuples, lists and scalars.

    Run it only on data :func:`scan` has passed: the scan is what bounds the
    memory its opcodes can ask for.

    Parameters
    ----------
    file
        Binary stream of pickle data.
    path
        The file it comes from, named in error messages.
    """

    def __init__(self, file: _Pickled, path: Path) -> None:
        # latin1 reads Python 2 byte strings (numpy's array data) back byte for byte.
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str, /) -> Any:
        """Return the checked stand-in for an allowed global; refuse any other."""
        func = _refuse_unless_allowed(self.path, module, name)
        return StandIn(f"{module}.{name}", func, self.path)


def load(
    path: Path, limit: int, budget: ReadBudget = DEFAULT_BUDGET
) -> tuple[object, HashingReader, bool]:
    """Scan, then unpickle ``path`` (gzipped or plain); return the object, hashes, gzip flag.

    At most ``limit`` (and ``budget.max_pickle_bytes``) decompressed bytes are read,
    and a gzip may not inflate past ``budget.max_ratio``.
    """
    try:
        raw = path.open("rb")
    except OSError as exc:
        msg = f"Cannot read {path}: {one_line(exc)}"
        raise SourceFormatError(msg) from None
    with raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: _Readable = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        bounded = _BoundedStream(stream, path, gz, limit, budget, raw.tell if gz else None)
        hashing = HashingReader(bounded)
        recorder = _Recorder(hashing)
        scan(path, recorder)
        if hashing.read(1):
            msg = (
                f"Invalid pickle {path}: expected the file to end after the pickle, found more data"
            )
            raise SourceFormatError(msg)
    try:
        result = RestrictedUnpickler(recorder.replay(), path).load()
    except CatalogError:
        raise
    except MALFORMED as exc:
        msg = f"Cannot unpickle {path}: {one_line(exc)}"
        raise SourceFormatError(msg) from None
    return result, hashing, gz
