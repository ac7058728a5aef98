"""What every reader does around its own work, in one place (:func:`bounded`).

Before it reads: the source's name must be text (UTF-8), and the source a folder or a
regular file (a FIFO would block, ``/dev/zero`` never ends). While it reads and streams:
an error of the libraries underneath (zlib, gzip, xz, zipfile, csv, pyarrow, Pillow,
numpy's allocations, a name that is not UTF-8, ``MemoryError``) becomes one
:class:`~catalog.errors.SourceFormatError` naming the source, and each block's labels are
checked (:class:`LabelCheck`). After it opens: the source holds
at least one image, at most :attr:`~catalog.budget.ReadBudget.max_images`, and
names at most :attr:`~catalog.budget.ReadBudget.max_labels` classes.
"""

from __future__ import annotations

import csv
import functools
import lzma
import os
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, INT32_MAX, ReadBudget
from catalog.errors import EmptySourceError, SourceFormatError
from catalog.sources import Batch, Decoded, check_name, display
from catalog.sources.streams import one_line

#: Errors of the standard library that mean "this file cannot be read as that".
_STANDARD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # gzip.BadGzipFile, Pillow's UnidentifiedImageError, pyarrow's IOError
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    csv.Error,
    struct.error,
    UnicodeError,
    MemoryError,  # numpy's _ArrayMemoryError too
)


def library_errors() -> tuple[type[BaseException], ...]:
    """The errors turned into :class:`SourceFormatError`: the standard ones, and those
    of pyarrow and Pillow when a reader has imported them (never imported here)."""
    found = list(_STANDARD_ERRORS)
    arrow = sys.modules.get("pyarrow.lib")
    if arrow is not None:
        found.append(arrow.ArrowException)
    pillow = sys.modules.get("PIL.Image")
    if pillow is not None:
        found.append(pillow.DecompressionBombError)
    return tuple(found)


@contextmanager
def converted(path: Path) -> Iterator[None]:
    """Turn a library error raised in the block into a one-line error naming ``path``."""
    try:
        yield
    except library_errors() as exc:
        if isinstance(exc, MemoryError):
            msg = (
                f"Cannot read {display(path)}: out of memory ({one_line(exc)}); "
                "a smaller read budget (--max-block-bytes) holds less at once"
            )
        else:
            msg = f"Cannot read {display(path)}: {one_line(exc)}"
        raise SourceFormatError(msg) from None


def check_kind(path: Path) -> None:
    """Refuse a source that is neither a folder nor a regular file (after symlinks)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        msg = f"Cannot read {display(path)}: {one_line(exc)}"
        raise SourceFormatError(msg) from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        msg = (
            f"Cannot read {display(path)}: it is not a regular file or a folder "
            "(a FIFO, socket or device); expected a file on disk"
        )
        raise SourceFormatError(msg)


Read = TypeVar("Read", bound=Callable[..., Decoded])


def bounded(read: Read) -> Read:
    """Wrap a reader ``read(path, ..., budget=...)`` in the checks every reader makes."""

    @functools.wraps(read)
    def reader(path: Path, *args: Any, **kwargs: Any) -> Decoded:
        budget: ReadBudget = kwargs.get("budget") or DEFAULT_BUDGET
        check_name(path.absolute())
        check_kind(path)
        with converted(path):
            decoded = read(path, *args, **kwargs)
            if path.exists():
                check_name(path.resolve())
        total = decoded.total
        if total == 0:
            raise no_images(path)
        budget.check_images(total, str(path), "images in all")
        budget.check_label_names(decoded.label_names, str(path))
        decoded.batches = _checked(decoded.batches, path, budget)
        return decoded

    return cast(Read, reader)


def no_images(path: Path) -> EmptySourceError:
    """The error for a source that holds no image."""
    msg = f"No images in {display(path)}: expected at least one image in one split"
    return EmptySourceError(msg)


def _checked(batches: Iterator[Batch], path: Path, budget: ReadBudget) -> Iterator[Batch]:
    labels = LabelCheck(budget, str(path))
    with converted(path):
        for batch in batches:
            labels.check(batch.labels, batch.indices)
            yield batch


class LabelCheck:
    """Check each block's labels as they stream: each fits a 32-bit integer, and the
    source holds at most :attr:`ReadBudget.max_labels` distinct ones (UNLABELED, -1, is
    not a label)."""

    def __init__(self, budget: ReadBudget, where: str) -> None:
        self.budget = budget
        self.where = where
        self.seen: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)

    def check(self, labels: npt.NDArray[np.int64], indices: npt.NDArray[np.int64]) -> None:
        """Check one block; ``indices`` give each image's index for the message."""
        if not labels.size:
            return
        too_big = np.flatnonzero(labels > INT32_MAX)
        if too_big.size:
            i = int(too_big[0])
            msg = (
                f"{self.where}: label {int(labels[i]):,} of image {int(indices[i])} does not fit "
                f"a 32-bit integer (expected labels 0-{INT32_MAX:,})"
            )
            raise SourceFormatError(msg)
        found = np.unique(labels[labels >= 0])
        if found.size and not np.isin(found, self.seen, assume_unique=True).all():
            self.seen = np.union1d(self.seen, found)
            if len(self.seen) > self.budget.max_labels:
                first = ", ".join(str(n) for n in self.seen[:3].tolist())
                claim = f"{self.where} holds {len(self.seen):,} distinct labels ({first}, ...)"
                self.budget.refuse("max_labels", claim)
