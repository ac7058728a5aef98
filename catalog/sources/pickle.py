"""Read the classic ``mnist.pkl.gz``: a pickled tuple of (images, labels) pairs.

The file holds ``(train, valid, test)`` (or ``(train, test)``), each a pair of a
float32 ``(n, 784)`` array with values in [0, 1) and an int64 ``(n,)`` array of
labels. It may be gzipped or plain, and written by Python 2 or Python 3.

Unpickling runs code from the file. A pickle names any importable callable
(``os.system``, ``builtins.eval``, ``subprocess.Popen``) and the arguments to
call it with, and :func:`pickle.load` calls it while loading, before anyone can
look at the result. This reader never does that. Its :class:`RestrictedUnpickler`
is a (pure-Python) pickle unpickler whose ``find_class`` answers only the names numpy
writes when it pickles an array (:data:`ALLOWED_GLOBALS`) and raises
:class:`~catalog.errors.UnsafePickleError` naming any other, before anything is
imported or called. Even the allowed names do not reach numpy's own functions:
each is answered by a stand-in that checks its arguments and builds the array
itself with :func:`numpy.frombuffer`. So numpy's ``__setstate__`` (which would
accept object dtypes and arbitrary dtype flags) never runs, no dtype other than
a plain bool, integer or float type can be made, and no array is allocated
beyond the bytes that are really in the file. The decompressed stream is read
in chunks and refused past :data:`MAX_PICKLE_BYTES`.

Float pixels go back to uint8 without loss where possible: when every value
times 256 is an integer below 256 (the classic file stores ``k / 256``) they
are multiplied by 256, otherwise multiplied by 255 and rounded. The choice is
recorded in the file's :attr:`~catalog.sources.SourceFile.note`.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from catalog.errors import CatalogError, SourceFormatError, UnsafePickleError
from catalog.sources import BATCH_SIZE, GZIP_MAGIC, Batch, Decoded, HashingReader, SourceFile

#: Largest decompressed pickle this reader accepts (4 GiB).
MAX_PICKLE_BYTES = 4 * 1024**3

#: Split names for a tuple of 2 or 3 (images, labels) pairs.
SPLITS_BY_LENGTH = {2: ("train", "test"), 3: ("train", "val", "test")}

NOTE_256 = "float pixels scaled by 256 (all values k/256)"
NOTE_255 = "float pixels scaled by 255 and rounded (values are not all k/256)"

_CHUNK = 1 << 20
_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})
_PLAIN_KINDS = "biuf"  # bool, signed and unsigned integers, floats

#: What a malformed opcode stream can raise from the unpickler or a stand-in's call.
_MALFORMED = (
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _BoundedStream:
    """Read a binary stream in chunks, refusing to go past ``limit`` bytes.

    The unpickler asks for as many bytes as an opcode claims; reading in
    chunks means a claim of terabytes costs only what the file really holds.
    """

    def __init__(self, stream: _Readable, path: Path, gz: bool, limit: int) -> None:
        self._stream = stream
        self._path = path
        self._gz = gz
        self._limit = limit
        self.total = 0

    def _call(self, method: Callable[[int], bytes], size: int) -> bytes:
        try:
            data = method(size)
        except (OSError, EOFError, zlib.error) as exc:
            if self._gz:
                msg = f"Cannot decompress {self._path}: corrupt or truncated gzip data ({_one_line(exc)})"
            else:
                msg = f"Cannot read {self._path}: {_one_line(exc)}"
            raise SourceFormatError(msg) from None
        self.total += len(data)
        if self.total > self._limit:
            msg = (
                f"Refusing to unpickle {self._path}: expected at most {self._limit} bytes "
                "of pickle data, found more"
            )
            raise SourceFormatError(msg)
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
        return self._call(self._stream.readline, self._limit - self.total + 1)


class _StandIn:
    """What ``find_class`` returns for an allowed name: a checked replacement."""

    __slots__ = ("func", "name", "path")

    def __init__(self, name: str, func: Callable[..., object], path: Path) -> None:
        self.name = name
        self.func = func
        self.path = path

    def __call__(self, *args: object) -> object:
        return self.func(self.path, *args)

    def __setstate__(self, state: object) -> None:
        msg = f"Refusing to unpickle {self.path}: it tries to change {self.name}, but only numpy arrays are allowed"
        raise UnsafePickleError(msg)


class _DtypeStandIn:
    """A dtype being unpickled: a plain number type, plus the byte order its state sets."""

    __slots__ = ("dtype", "path")

    def __init__(self, dtype: np.dtype[Any], path: Path) -> None:
        self.dtype = dtype
        self.path = path

    def __setstate__(self, state: object) -> None:
        # numpy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags),
        # and version 4 adds metadata. Only the byte order matters for a plain type.
        if not (
            isinstance(state, tuple)
            and len(state) in (8, 9)
            and state[1] in ("<", ">", "|", "=")
            and state[2:5] == (None, None, None)
        ):
            msg = (
                f"Invalid pickle {self.path}: expected the state of a plain number dtype, "
                f"found {_shorten(state)}"
            )
            raise SourceFormatError(msg)
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayStandIn:
    """An array being unpickled; ``array`` is set once its data has arrived."""

    __slots__ = ("array", "path")

    def __init__(self, path: Path, array: npt.NDArray[Any] | None = None) -> None:
        self.path = path
        self.array = array

    def __setstate__(self, state: object) -> None:
        if self.array is not None:
            msg = f"Invalid pickle {self.path}: expected one state per array, found a second one"
            raise SourceFormatError(msg)
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data)
        if not (isinstance(state, tuple) and len(state) == 4):
            msg = (
                f"Invalid pickle {self.path}: expected array state (shape, dtype, order, data), "
                f"found {_shorten(state)}"
            )
            raise SourceFormatError(msg)
        shape, dtype, fortran, data = state
        self.array = _array_from(self.path, data, dtype, shape, bool(fortran))


def _array_from(
    path: Path, data: object, dtype: object, shape: object, fortran: bool
) -> npt.NDArray[Any]:
    """Build an array over ``data`` after checking it holds exactly ``shape`` of ``dtype``."""
    if not isinstance(dtype, _DtypeStandIn):
        msg = (
            f"Invalid pickle {path}: expected a numpy dtype for array data, found {_shorten(dtype)}"
        )
        raise SourceFormatError(msg)
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        msg = f"Invalid pickle {path}: expected an array shape of non-negative integers, found {_shorten(shape)}"
        raise SourceFormatError(msg)
    if isinstance(data, str):  # Python 2 byte strings arrive as latin1-decoded text
        try:
            data = data.encode("latin1")
        except UnicodeEncodeError:
            msg = f"Invalid pickle {path}: array data is text with characters above 255"
            raise SourceFormatError(msg) from None
    if isinstance(data, bytearray):
        # Protocol 5 sends data as a bytearray that stays in the unpickler's memo;
        # an array viewing it would pin a buffer export that the memo's teardown
        # does not expect. Own a copy instead.
        data = bytes(data)
    if not isinstance(data, bytes):
        msg = f"Invalid pickle {path}: expected bytes of array data, found {type(data).__name__}"
        raise SourceFormatError(msg)
    needed = math.prod(shape) * dtype.dtype.itemsize
    if len(data) != needed:
        msg = (
            f"Invalid pickle {path}: array of shape {shape} and dtype {dtype.dtype} needs "
            f"{needed} bytes, found {len(data)}"
        )
        raise SourceFormatError(msg)
    flat = np.frombuffer(data, dtype=dtype.dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


def _make_dtype(
    path: Path, spec: object, align: object = False, copy: object = True
) -> _DtypeStandIn:
    if not isinstance(spec, str | bytes) or len(spec) > 8:
        msg = f"Invalid pickle {path}: expected a short dtype code such as 'f4', found {_shorten(spec)}"
        raise SourceFormatError(msg)
    code = spec.decode("latin1") if isinstance(spec, bytes) else spec
    try:
        dtype = np.dtype(code)
    except TypeError:
        msg = f"Invalid pickle {path}: unknown dtype code {code!r}"
        raise SourceFormatError(msg) from None
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        msg = (
            f"Refusing to unpickle {path}: it builds an array of dtype {dtype}, but only "
            "bool, integer and float arrays are allowed"
        )
        raise UnsafePickleError(msg)
    return _DtypeStandIn(dtype, path)


def _reconstruct(path: Path, subtype: object, shape: object, typecode: object) -> _ArrayStandIn:
    # numpy writes _reconstruct(ndarray, (0,), b'b') and sends the real shape, dtype
    # and data in the state that follows, so the placeholder arguments are not used.
    if not (isinstance(subtype, _StandIn) and subtype.func is _call_ndarray):
        msg = f"Invalid pickle {path}: expected _reconstruct(numpy.ndarray, ...), found {_shorten(subtype)}"
        raise SourceFormatError(msg)
    return _ArrayStandIn(path)


def _frombuffer(
    path: Path, data: object, dtype: object, shape: object, order: object
) -> _ArrayStandIn:
    if order not in ("C", "F"):
        msg = f"Invalid pickle {path}: expected array order 'C' or 'F', found {_shorten(order)}"
        raise SourceFormatError(msg)
    return _ArrayStandIn(path, _array_from(path, data, dtype, shape, order == "F"))


def _call_ndarray(path: Path, *args: object) -> object:
    msg = f"Refusing to unpickle {path}: it calls numpy.ndarray directly, but only numpy arrays are allowed"
    raise UnsafePickleError(msg)


def _encode(
    path: Path, text: object, encoding: object = "utf-8", errors: object = "strict"
) -> bytes:
    # Python 3 writes bytes at protocol 2 as _codecs.encode(text, 'latin1').
    if not (isinstance(text, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1):
        msg = (
            f"Refusing to unpickle {path}: it calls _codecs.encode with {_shorten(encoding)}, "
            "but only latin1 byte strings are allowed"
        )
        raise UnsafePickleError(msg)
    try:
        return text.encode("latin1")
    except UnicodeEncodeError:
        msg = f"Invalid pickle {path}: latin1 byte string has characters above 255"
        raise SourceFormatError(msg) from None


def _empty_bytes(path: Path, *args: object) -> bytes:
    # Python 3 writes b"" at protocol 2 as bytes().
    if args:
        msg = f"Refusing to unpickle {path}: it calls bytes with arguments, but only bytes() is allowed"
        raise UnsafePickleError(msg)
    return b""


#: The globals a pickle may name, each with the checked stand-in that answers it.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., object]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _call_ndarray,
    ("numpy", "dtype"): _make_dtype,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


def _load_bytearray8(unpickler: Any) -> None:
    # The stock loader allocates (and zeroes) as many bytes as the opcode claims
    # before reading them; read first, so a claim costs only what the file holds.
    read: Callable[[int], bytes] = unpickler.read
    (size,) = struct.unpack("<Q", read(8))
    data = read(size)
    if len(data) != size:
        msg = "pickle data was truncated"
        raise pickle.UnpicklingError(msg)
    unpickler.append(data)


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that can only rebuild plain numpy arrays, tuples, lists and scalars.

    It is Python's own pure-Python :class:`pickle.Unpickler`: the C one grows its
    memo to the largest index a ``LONG_BINPUT`` names, so nine bytes of pickle can
    make it zero gigabytes of memory; this one keeps the memo in a dict.

    Parameters
    ----------
    file
        Binary stream of pickle data.
    path
        The file it comes from, named in error messages.
    """

    dispatch: ClassVar[dict[int, Callable[[pickle.Unpickler], None]]] = dict(
        pickle._Unpickler.dispatch
    )
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def __init__(self, file: HashingReader, path: Path) -> None:
        # latin1 reads Python 2 byte strings (numpy's array data) back byte for byte.
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """Return the checked stand-in for an allowed global; refuse any other."""
        func = ALLOWED_GLOBALS.get((module, name))
        if func is None:
            msg = (
                f"Refusing to unpickle {self.path}: it references {module}.{name}, "
                "but only numpy arrays are allowed"
            )
            raise UnsafePickleError(msg)
        return _StandIn(f"{module}.{name}", func, self.path)


def _describe(value: object) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, _ArrayStandIn):
        return "an array"
    return f"a {type(value).__name__}"


def _array(path: Path, value: object, what: str) -> npt.NDArray[Any]:
    if not isinstance(value, _ArrayStandIn) or value.array is None:
        msg = f"Invalid pickle {path}: expected {what} as a numpy array, found {_describe(value)}"
        raise SourceFormatError(msg)
    return value.array


def _check_split(path: Path, split: str, pair: object) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Return (pixels (n, h, w), labels (n,)) of one split after checking shapes, dtypes, labels."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        msg = f"Invalid pickle {path}: expected the {split} entry to be an (images, labels) pair, found {_describe(pair)}"
        raise SourceFormatError(msg)
    x = _array(path, pair[0], f"{split} images")
    y = _array(path, pair[1], f"{split} labels")
    if x.dtype.kind != "f" and x.dtype != np.uint8:
        msg = (
            f"Invalid pickle {path}: expected float or uint8 {split} images, found dtype {x.dtype}"
        )
        raise SourceFormatError(msg)
    side = math.isqrt(x.shape[1]) if x.ndim == 2 else 0
    if x.ndim == 2 and side > 0 and side * side == x.shape[1]:
        x = x.reshape(x.shape[0], side, side)
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        msg = (
            f"Invalid pickle {path}: expected {split} images of shape (n, 784) or (n, 28, 28) "
            f"(any square size), found {x.shape}"
        )
        raise SourceFormatError(msg)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        msg = f"Invalid pickle {path}: expected {split} labels as integers of shape (n,), found {y.dtype} {y.shape}"
        raise SourceFormatError(msg)
    if len(y) != len(x):
        msg = f"Invalid pickle {path}: expected as many {split} labels as images ({len(x)}), found {len(y)}"
        raise SourceFormatError(msg)
    bad = np.flatnonzero((y < 0) | (y > 9))
    if bad.size:
        msg = f"Invalid pickle {path}: expected {split} labels 0-9, found {y[bad[0]]} at index {bad[0]}"
        raise SourceFormatError(msg)
    return x, y


def _scan_floats(path: Path, split: str, x: npt.NDArray[Any]) -> bool:
    """Check float pixels are in [0, 1]; return True when all are k/256 with k < 256."""
    all_k256 = True
    for start in range(0, len(x), BATCH_SIZE):
        chunk = x[start : start + BATCH_SIZE]
        bad = np.isnan(chunk) | (chunk < 0) | (chunk > 1)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(chunk), -1).any(axis=1))[0])
            value = chunk[row][bad[row]][0]
            msg = (
                f"Invalid pickle {path}: expected {split} pixel values in [0, 1], "
                f"found {value} in image {start + row}"
            )
            raise SourceFormatError(msg)
        if all_k256:
            scaled = chunk * 256
            all_k256 = bool(np.all(scaled == np.floor(scaled))) and bool(np.all(scaled < 256))
    return all_k256


def _batches(
    splits: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]], scale: int
) -> Iterator[Batch]:
    for split, (x, y) in splits.items():
        for start in range(0, len(x), BATCH_SIZE):
            stop = min(start + BATCH_SIZE, len(x))
            chunk = x[start:stop]
            if chunk.dtype.kind != "f":
                pixels = chunk.astype(np.uint8, order="C")
            elif scale == 256:
                pixels = (chunk * 256).astype(np.uint8, order="C")
            else:
                pixels = np.rint(chunk * 255).astype(np.uint8, order="C")
            yield Batch(
                split=split,
                indices=np.arange(start, stop, dtype=np.int64),
                labels=y[start:stop].astype(np.int64),
                pixels=pixels,
            )


def _load(path: Path) -> tuple[object, HashingReader, bool]:
    """Unpickle ``path`` with the restricted unpickler; return the object, hashes, gzip flag."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        msg = f"Cannot read {path}: {_one_line(exc)}"
        raise SourceFormatError(msg) from None
    with raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: _Readable = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        hashing = HashingReader(_BoundedStream(stream, path, gz, MAX_PICKLE_BYTES))
        try:
            result = RestrictedUnpickler(hashing, path).load()
        except CatalogError:
            raise
        except _MALFORMED as exc:
            msg = f"Cannot unpickle {path}: {_one_line(exc)}"
            raise SourceFormatError(msg) from None
        if hashing.read(1):
            msg = (
                f"Invalid pickle {path}: expected the file to end after the pickle, found more data"
            )
            raise SourceFormatError(msg)
    return result, hashing, gz


def read_pickle(path: Path) -> Decoded:
    """Read a pickled MNIST tuple such as ``mnist.pkl.gz`` without running code from it.

    Parameters
    ----------
    path
        A gzipped or plain pickle of ``(train, valid, test)`` or ``(train, test)``,
        each an ``(images, labels)`` pair of numpy arrays.

    Returns
    -------
    Decoded
        Splits ``train``, ``val``, ``test`` (or ``train``, ``test``); one
        :class:`SourceFile` whose digests are of the decompressed pickle.

    Raises
    ------
    UnsafePickleError
        When the pickle names anything but numpy array reconstruction.
    SourceFormatError
        When the file is not a readable pickle of that layout, or its pixels or
        labels are out of range.
    """
    result, hashing, gz = _load(path)
    if not isinstance(result, tuple | list) or len(result) not in SPLITS_BY_LENGTH:
        msg = (
            f"Invalid pickle {path}: expected a tuple of 2 or 3 (images, labels) pairs, "
            f"found {_describe(result)}"
        )
        raise SourceFormatError(msg)
    names = SPLITS_BY_LENGTH[len(result)]
    splits = {
        name: _check_split(path, name, pair) for name, pair in zip(names, result, strict=True)
    }
    sizes = {name: x.shape[1:] for name, (x, _) in splits.items() if len(x)}
    if len(set(sizes.values())) > 1:
        found = ", ".join(f"{name} {h}x{w}" for name, (h, w) in sizes.items())
        msg = f"Invalid pickle {path}: expected one image size in all splits, found {found}"
        raise SourceFormatError(msg)
    floats = {name: x for name, (x, _) in splits.items() if x.dtype.kind == "f"}
    all_k256 = True
    for name, x in floats.items():
        all_k256 = _scan_floats(path, name, x) and all_k256
    note = (NOTE_256 if all_k256 else NOTE_255) if floats else None
    source = SourceFile(
        uri=str(path.resolve()),
        format="pickle.gz" if gz else "pickle",
        size=path.stat().st_size,
        sha256=hashing.sha256.hexdigest(),
        md5=hashing.md5.hexdigest(),
        role="images and labels",
        note=note,
    )
    return Decoded(
        format="pickle",
        counts={name: len(x) for name, (x, _) in splits.items()},
        batches=_batches(splits, 256 if all_k256 else 255),
        files=[source],
    )
