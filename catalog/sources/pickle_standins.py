"""Stand-ins for the few globals a pickle of numpy arrays may name.

:class:`~catalog.sources.safe_unpickle.RestrictedUnpickler` answers each name in
:data:`ALLOWED_GLOBALS` with a :class:`StandIn` for its checked replacement, so
no numpy function (nor anything else importable) is called with arguments from
the file. Arrays are built here, with :func:`numpy.frombuffer`, only once their
data has arrived and only as large as that data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.errors import SourceFormatError, UnsafePickleError

_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})
_PLAIN_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def shorten(value: object) -> str:
    """``repr(value)``, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class StandIn:
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
                f"found {shorten(state)}"
            )
            raise SourceFormatError(msg)
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class ArrayStandIn:
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
                f"found {shorten(state)}"
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
            f"Invalid pickle {path}: expected a numpy dtype for array data, found {shorten(dtype)}"
        )
        raise SourceFormatError(msg)
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        msg = f"Invalid pickle {path}: expected an array shape of non-negative integers, found {shorten(shape)}"
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
        msg = f"Invalid pickle {path}: expected a short dtype code such as 'f4', found {shorten(spec)}"
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


def _reconstruct(path: Path, subtype: object, shape: object, typecode: object) -> ArrayStandIn:
    # numpy writes _reconstruct(ndarray, (0,), b'b') and sends the real shape, dtype
    # and data in the state that follows, so the placeholder arguments are not used.
    if not (isinstance(subtype, StandIn) and subtype.func is _call_ndarray):
        msg = f"Invalid pickle {path}: expected _reconstruct(numpy.ndarray, ...), found {shorten(subtype)}"
        raise SourceFormatError(msg)
    return ArrayStandIn(path)


def _frombuffer(
    path: Path, data: object, dtype: object, shape: object, order: object
) -> ArrayStandIn:
    if order not in ("C", "F"):
        msg = f"Invalid pickle {path}: expected array order 'C' or 'F', found {shorten(order)}"
        raise SourceFormatError(msg)
    return ArrayStandIn(path, _array_from(path, data, dtype, shape, order == "F"))


def _call_ndarray(path: Path, *args: object) -> object:
    msg = f"Refusing to unpickle {path}: it calls numpy.ndarray directly, but only numpy arrays are allowed"
    raise UnsafePickleError(msg)


def _encode(
    path: Path, text: object, encoding: object = "utf-8", errors: object = "strict"
) -> bytes:
    # Python 3 writes bytes at protocol 2 as _codecs.encode(text, 'latin1').
    if not (isinstance(text, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1):
        msg = (
            f"Refusing to unpickle {path}: it calls _codecs.encode with {shorten(encoding)}, "
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
