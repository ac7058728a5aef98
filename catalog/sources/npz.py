"""Read keras' ``mnist.npz``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.

``x_val`` and ``y_val`` are read too when present. Each member's ``.npy`` header
is checked before its data is read: object arrays (which only unpickling could
load) are refused, and a header must not claim more data than the zip member
holds, so a crafted file cannot make the reader allocate what is not there.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from catalog.errors import SourceFormatError
from catalog.sources import BATCH_SIZE, Batch, Decoded, SourceFile
from catalog.sources.checks import check_labels, square_images

#: Split names in the order they are read, with their (images, labels) keys.
SPLIT_KEYS = {
    "train": ("x_train", "y_train"),
    "val": ("x_val", "y_val"),
    "test": ("x_test", "y_test"),
}
OPTIONAL_SPLITS = frozenset({"val"})

#: Largest array this reader accepts (4 GiB).
MAX_ARRAY_BYTES = 4 * 1024**3

_CHUNK = 1 << 20


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _digests(path: Path) -> tuple[str, str]:
    sha256 = hashlib.sha256()
    md5 = hashlib.md5()  # the digest MNIST mirrors publish
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _read_member(path: Path, archive: zipfile.ZipFile, key: str) -> npt.NDArray[Any]:
    """Return the array stored as ``key.npy`` after checking its header."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as stream:
        shape, fortran, dtype = _read_header(path, key, stream)
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
            msg = (
                f"Refusing to read {key} from {path}: it is an array of dtype {dtype}, which "
                "needs unpickling; expected a numeric array"
            )
            raise SourceFormatError(msg)
        needed = math.prod(shape) * dtype.itemsize
        if needed > min(info.file_size, MAX_ARRAY_BYTES):
            msg = (
                f"Invalid npz {path}: {key} claims shape {shape} of {dtype} ({needed} bytes), "
                f"but its member holds {info.file_size} bytes (limit {MAX_ARRAY_BYTES})"
            )
            raise SourceFormatError(msg)
        data = stream.read(needed)
    if len(data) != needed:
        msg = f"Invalid npz {path}: expected {needed} bytes of {key} data, found {len(data)}"
        raise SourceFormatError(msg)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_header(
    path: Path, key: str, stream: IO[bytes]
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
    except ValueError as exc:
        msg = f"Invalid npz {path}: cannot read the header of {key} ({_one_line(exc)})"
        raise SourceFormatError(msg) from None
    if any(n < 0 for n in shape):
        msg = f"Invalid npz {path}: expected a shape of non-negative sizes for {key}, found {shape}"
        raise SourceFormatError(msg)
    return shape, fortran, dtype


def _load(path: Path) -> dict[str, npt.NDArray[Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            members = {name.removesuffix(".npy") for name in names if name.endswith(".npy")}
            wanted = [key for keys in SPLIT_KEYS.values() for key in keys if key in members]
            return {key: _read_member(path, archive, key) for key in wanted}
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        msg = f"Cannot read {path} as npz: {_one_line(exc)}"
        raise SourceFormatError(msg) from None


def _check_split(
    path: Path, split: str, arrays: dict[str, npt.NDArray[Any]]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[Any]] | None:
    x_key, y_key = SPLIT_KEYS[split]
    if x_key not in arrays and y_key not in arrays and split in OPTIONAL_SPLITS:
        return None
    missing = [key for key in (x_key, y_key) if key not in arrays]
    if missing:
        msg = (
            f"Invalid npz {path}: expected arrays {x_key} and {y_key}, "
            f"found no {' or '.join(missing)} (keys: {', '.join(sorted(arrays)) or 'none'})"
        )
        raise SourceFormatError(msg)
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype != np.uint8:
        msg = f"Invalid npz {path}: expected {x_key} of dtype uint8, found {x.dtype}"
        raise SourceFormatError(msg)
    x = square_images(x)
    if x.ndim != 3 or 0 in x.shape[1:]:
        msg = f"Invalid npz {path}: expected {x_key} of shape (n, height, width), found {x.shape}"
        raise SourceFormatError(msg)
    check_labels(y, len(x), f"Invalid npz {path}", y_key, x_key)
    return x, y


def split_batches(
    splits: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[Any]]],
) -> Iterator[Batch]:
    """Each split's ``(images, labels)`` arrays cut into batches of :data:`BATCH_SIZE`."""
    for split, (x, y) in splits.items():
        for start in range(0, len(x), BATCH_SIZE):
            stop = min(start + BATCH_SIZE, len(x))
            yield Batch(
                split=split,
                indices=np.arange(start, stop, dtype=np.int64),
                labels=y[start:stop].astype(np.int64),
                pixels=np.array(x[start:stop], dtype=np.uint8, order="C"),
            )


def read_npz(path: Path) -> Decoded:
    """Read a keras-style ``mnist.npz`` without unpickling anything.

    Parameters
    ----------
    path
        An ``.npz`` archive with ``x_train``, ``y_train``, ``x_test``, ``y_test``
        and optionally ``x_val``, ``y_val``: uint8 images ``(n, h, w)`` (or
        ``(n, h*w)`` with square images) and integer labels 0-9.

    Returns
    -------
    Decoded
        Splits ``train``, ``val`` (when present) and ``test``; one
        :class:`SourceFile` whose digests are of the file's bytes.

    Raises
    ------
    SourceFormatError
        When the archive is unreadable, a key is missing, an array is an object
        array or has the wrong dtype or shape, lengths differ, or a label is
        outside 0-9.
    """
    arrays = _load(path)
    splits = {
        split: checked
        for split in SPLIT_KEYS
        if (checked := _check_split(path, split, arrays)) is not None
    }
    sizes = {split: x.shape[1:] for split, (x, _) in splits.items() if len(x)}
    if len(set(sizes.values())) > 1:
        found = ", ".join(f"{split} {h}x{w}" for split, (h, w) in sizes.items())
        msg = f"Invalid npz {path}: expected one image size in all splits, found {found}"
        raise SourceFormatError(msg)
    sha256, md5 = _digests(path)
    source = SourceFile(
        uri=str(path.resolve()),
        format="npz",
        size=path.stat().st_size,
        sha256=sha256,
        md5=md5,
        role="images and labels",
    )
    return Decoded(
        format="npz",
        counts={split: len(x) for split, (x, _) in splits.items()},
        batches=split_batches(splits),
        files=[source],
    )
