"""What every reader does around its own work, in one place (:func:`bounded`).

Before it reads: the source's name must be text (UTF-8), and the source a folder or a
regular file (a FIFO would block, ``/dev/zero`` never ends). While it reads and streams:
an error of the libraries underneath (zlib, gzip, xz, zipfile, csv, pyarrow, Pillow,
numpy's allocations, a name that is not UTF-8, ``MemoryError``) becomes one
:class:`~catalog.errors.SourceFormatError` naming the source, and each block's labels are
checked (:class:`~catalog.sources.budget.LabelCheck`). After it opens: the source holds
at least one image, at most :attr:`~catalog.sources.budget.ReadBudget.max_images`, and
names at most :attr:`~catalog.sources.budget.ReadBudget.max_labels` classes.
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

from catalog.errors import EmptySourceError, SourceFormatError
from catalog.sources import Batch, Decoded, check_name, display
from catalog.sources.budget import DEFAULT_BUDGET, LabelCheck, ReadBudget
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
            msg = f"No images in {path}: expected at least one image in one split"
            raise EmptySourceError(msg)
        budget.check_images(total, str(path), "images in all")
        budget.check_label_names(decoded.label_names, str(path))
        decoded.batches = _checked(decoded.batches, path, budget)
        return decoded

    return cast(Read, reader)


def _checked(batches: Iterator[Batch], path: Path, budget: ReadBudget) -> Iterator[Batch]:
    labels = LabelCheck(budget, str(path))
    with converted(path):
        for batch in batches:
            labels.check(batch.labels, batch.indices)
            yield batch
