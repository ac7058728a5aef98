"""Read keras' ``mnist.npz``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.

``x_val`` and ``y_val`` are read too when present. Each member's ``.npy`` header
is checked before its data is read (:mod:`catalog.sources.npy_members`): object
arrays (which only unpickling could load) are refused, a header must not claim
more data than the zip member holds, nor a member more than the read budget's
ratio of its compressed size, nor more images or a longer side than the budget.
Labels are read whole (a few bytes an image); images are streamed a block of
rows at a time, never inflated whole.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import BATCH_SIZE, Batch, Decoded, SourceFile
from catalog.sources.checks import check_labels
from catalog.sources.guard import bounded, library_errors
from catalog.sources.npy_members import NpyMember, NpyRows, read_npy_header, read_whole, verify
from catalog.sources.streams import one_line

#: Split names in the order they are read, with their (images, labels) keys.
SPLIT_KEYS = {
    "train": ("x_train", "y_train"),
    "val": ("x_val", "y_val"),
    "test": ("x_test", "y_test"),
}
OPTIONAL_SPLITS = frozenset({"val"})

#: Largest array this reader accepts whatever the budget (4 GiB).
MAX_ARRAY_BYTES = 4 * 1024**3

_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    sha256 = hashlib.sha256()
    md5 = hashlib.md5()  # the digest MNIST mirrors publish
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


@contextmanager
def as_npz(path: Path) -> Iterator[None]:
    """Turn what zipfile, zlib and numpy raise into one line naming ``path``."""
    try:
        yield
    except library_errors() as exc:
        msg = f"Cannot read {path} as npz: {one_line(exc)}"
        raise SourceFormatError(msg) from None


@dataclass(frozen=True)
class ImageMember:
    """The images of one split: their member, and their shape as images."""

    member: NpyMember
    count: int
    height: int
    width: int


def image_member(
    member: NpyMember, where: str, budget: ReadBudget, key: str | None = None
) -> ImageMember:
    """Check ``member`` holds uint8 images ``(n, h, w)`` or ``(n, side * side)`` within
    the budget (count, side), from its header alone."""
    key = key or member.key
    if member.dtype != np.uint8:
        msg = f"{where}: expected {key} of dtype uint8, found {member.dtype}"
        raise SourceFormatError(msg)
    shape = member.shape
    side = math.isqrt(shape[1]) if len(shape) == 2 else 0
    if side > 0 and side * side == shape[1]:  # (n, 784): flat square images
        shape = (shape[0], side, side)
    if len(shape) != 3 or 0 in shape[1:]:
        msg = f"{where}: expected {key} of shape (n, height, width), found {member.shape}"
        raise SourceFormatError(msg)
    budget.check_images(shape[0], member.where)
    budget.check_side(shape[1], shape[2], member.where)
    return ImageMember(member, shape[0], shape[1], shape[2])


def stream_images(
    splits: dict[str, tuple[ImageMember, npt.NDArray[np.int64]]],
    budget: ReadBudget,
) -> Iterator[Batch]:
    """Each split's images a block of rows at a time, with their labels (each split's
    images may be in an archive of its own: Kuzushiji's)."""
    for split, (images, labels) in splits.items():
        rows = budget.block_rows(images.height * images.width, images.member.where, BATCH_SIZE)
        archive_path = images.member.path
        with (
            as_npz(archive_path),
            zipfile.ZipFile(archive_path) as archive,
            NpyRows(archive, images.member, budget) as reader,
        ):
            for start in range(0, images.count, rows):
                n = min(rows, images.count - start)
                pixels = reader.read(start, n).reshape(n, images.height, images.width)
                yield Batch(
                    split=split,
                    indices=np.arange(start, start + n, dtype=np.int64),
                    labels=labels[start : start + n],
                    pixels=np.ascontiguousarray(pixels),
                )


def _members(path: Path, budget: ReadBudget) -> dict[str, NpyMember]:
    with as_npz(path), zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        keys = [key for keys in SPLIT_KEYS.values() for key in keys if f"{key}.npy" in names]
        where = f"Invalid npz {path}"
        return {
            key: read_npy_header(path, archive, f"{key}.npy", where, budget, MAX_ARRAY_BYTES)
            for key in keys
        }


def _verify(path: Path, members: list[NpyMember], budget: ReadBudget) -> None:
    """Read every member to its end (its CRC), once its header has passed every check."""
    with as_npz(path), zipfile.ZipFile(path) as archive:
        for member in members:
            verify(archive, member, budget)


def _labels(path: Path, member: NpyMember, budget: ReadBudget) -> npt.NDArray[Any]:
    if len(member.shape) != 1 or member.dtype.kind not in "iu":
        msg = (
            f"Invalid npz {path}: expected {member.key} labels as integers of shape (n,), "
            f"found {member.dtype} {member.shape}"
        )
        raise SourceFormatError(msg)
    budget.check_images(member.shape[0], member.where, "labels")
    with as_npz(path), zipfile.ZipFile(path) as archive:
        return read_whole(archive, member, budget)


def _check_split(
    path: Path, split: str, members: dict[str, NpyMember], budget: ReadBudget
) -> tuple[ImageMember, npt.NDArray[np.int64]] | None:
    x_key, y_key = SPLIT_KEYS[split]
    if x_key not in members and y_key not in members and split in OPTIONAL_SPLITS:
        return None
    missing = [key for key in (x_key, y_key) if key not in members]
    if missing:
        msg = (
            f"Invalid npz {path}: expected arrays {x_key} and {y_key}, "
            f"found no {' or '.join(missing)} (keys: {', '.join(sorted(members)) or 'none'})"
        )
        raise SourceFormatError(msg)
    images = image_member(members[x_key], f"Invalid npz {path}", budget)
    y = _labels(path, members[y_key], budget)
    check_labels(y, images.count, f"Invalid npz {path}", y_key, x_key)
    return images, y.astype(np.int64)


@bounded
def read_npz(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read a keras-style ``mnist.npz`` without unpickling anything.

    Parameters
    ----------
    path
        An ``.npz`` archive with ``x_train``, ``y_train``, ``x_test``, ``y_test``
        and optionally ``x_val``, ``y_val``: uint8 images ``(n, h, w)`` (or
        ``(n, h*w)`` with square images) and integer labels 0-9.
    budget
        What the archive may declare and the reader hold (:class:`ReadBudget`).

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
    OverBudgetError
        When a member declares more than ``budget`` allows (images, side, ratio).
    """
    members = _members(path, budget)
    splits = {
        split: checked
        for split in SPLIT_KEYS
        if (checked := _check_split(path, split, members, budget)) is not None
    }
    sizes = {split: (x.height, x.width) for split, (x, _) in splits.items() if x.count}
    if len(set(sizes.values())) > 1:
        found = ", ".join(f"{split} {h}x{w}" for split, (h, w) in sizes.items())
        msg = f"Invalid npz {path}: expected one image size in all splits, found {found}"
        raise SourceFormatError(msg)
    budget.check_images(sum(x.count for x, _ in splits.values()), str(path))
    _verify(path, list(members.values()), budget)  # before any block is yielded
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
        counts={split: x.count for split, (x, _) in splits.items()},
        batches=stream_images(splits, budget),
        files=[source],
    )
