"""Read the classic ``mnist.pkl.gz``: a pickled tuple of (images, labels) pairs.

The file holds ``(train, valid, test)`` (or ``(train, test)``), each a pair of a
float32 ``(n, 784)`` array with values in [0, 1) and an int64 ``(n,)`` array of
labels. It may be gzipped or plain, and written by Python 2 or Python 3.

Unpickling runs code from the file; this reader never does.
:func:`~catalog.sources.safe_unpickle.load` scans every opcode and length claim
before anything is built, then unpickles with a ``find_class`` that answers only
the names numpy writes when it pickles an array, each with a checked stand-in
(:mod:`catalog.sources.pickle_standins`). Any other name raises
:class:`~catalog.errors.UnsafePickleError` before anything is imported or
called, only plain bool, integer and float arrays can be made, and no array is
allocated beyond the bytes that are really in the file. The decompressed stream
is refused past the read budget's
:attr:`~catalog.budget.ReadBudget.max_pickle_bytes` (a pickle is held
whole: it cannot stream), or when its gzip inflates past the budget's ratio.

Float pixels go back to uint8 without loss where possible: when every value
times 256 is an integer below 256 (the classic file stores ``k / 256``) they
are multiplied by 256, otherwise multiplied by 255 and rounded. The choice is
recorded in the file's :attr:`~catalog.sources.SourceFile.note`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import BATCH_SIZE, Batch, Decoded, SourceFile
from catalog.sources.checks import check_labels, square_images
from catalog.sources.guard import bounded
from catalog.sources.pickle_standins import ArrayStandIn
from catalog.sources.safe_unpickle import load

#: Largest decompressed pickle this reader accepts whatever the budget (4 GiB).
MAX_PICKLE_BYTES = 4 * 1024**3

#: Split names for a tuple of 2 or 3 (images, labels) pairs.
SPLITS_BY_LENGTH = {2: ("train", "test"), 3: ("train", "val", "test")}

NOTE_256 = "float pixels scaled by 256 (all values k/256)"
NOTE_255 = "float pixels scaled by 255 and rounded (values are not all k/256)"


def _describe(value: object) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, ArrayStandIn):
        return "an array"
    return f"a {type(value).__name__}"


def _array(path: Path, value: object, what: str) -> npt.NDArray[Any]:
    if not isinstance(value, ArrayStandIn) or value.array is None:
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
    x = square_images(x)
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        msg = (
            f"Invalid pickle {path}: expected {split} images of shape (n, 784) or (n, 28, 28) "
            f"(any square size), found {x.shape}"
        )
        raise SourceFormatError(msg)
    check_labels(y, len(x), f"Invalid pickle {path}", split, f"{split} images")
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
    splits: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]], scale: int, budget: ReadBudget
) -> Iterator[Batch]:
    for split, (x, y) in splits.items():
        rows = budget.block_rows(x[0].size * x.dtype.itemsize, split, BATCH_SIZE) if len(x) else 1
        for start in range(0, len(x), rows):
            stop = min(start + rows, len(x))
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


@bounded
def read_pickle(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read a pickled MNIST tuple such as ``mnist.pkl.gz`` without running code from it.

    Parameters
    ----------
    path
        A gzipped or plain pickle of ``(train, valid, test)`` or ``(train, test)``,
        each an ``(images, labels)`` pair of numpy arrays.
    budget
        What the pickle may hold (:class:`ReadBudget`): it is read whole.

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
    OverBudgetError
        When it inflates past ``budget.max_pickle_bytes`` or ``budget.max_ratio``,
        or its images are more or larger than the budget allows.
    """
    result, hashing, gz = load(path, MAX_PICKLE_BYTES, budget)
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
    for x, _ in splits.values():
        budget.check_side(x.shape[1], x.shape[2], str(path))
    budget.check_images(sum(len(x) for x, _ in splits.values()), str(path))
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
        batches=_batches(splits, 256 if all_k256 else 255, budget),
        files=[source],
    )
