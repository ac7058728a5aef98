"""QMNIST: MNIST's reconstruction with extended labels (writer, series, NIST index).

QMNIST (Yadav and Bottou, "Cold Case: The Lost MNIST Digits", 2019;
https://github.com/facebookresearch/qmnist, README "Data format") publishes:

- ``qmnist-{train,test}-images-idx3-ubyte.gz``: IDX uint8 images, as MNIST's;
- ``qmnist-{train,test}-labels-idx2-int.gz``: IDX type 0x0C (big-endian int32),
  2 dimensions, N x 8, the columns being: 0 the digit class, 1 the NIST HSF
  series, 2 the NIST writer id, 3 the digit's index for that writer, 4 the NIST
  class code, 5 the global NIST index, 6 a duplicate flag, 7 unused (zero);
- ``xnist-images-idx3-ubyte.xz`` and ``xnist-labels-idx2-int.xz``: all NIST
  digits in the same layout, xz-compressed (split ``xnist``).

Column 0 is the label; columns 1-6 become per-image metadata (``hsf``,
``writer``, ``writer_index``, ``nist_class``, ``nist_index``, ``duplicate``).
The first 10,000 QMNIST test images are MNIST's test set, in order: those
images get ``mnist_test_index`` (their MNIST test index).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import Batch, Decoded, SourceFile
from catalog.sources.guard import bounded
from catalog.sources.idx import IdxHeader, read_header, stream_images

FILE_NAME = re.compile(
    r"^(?:qmnist-(?P<split>train|test)|(?P<xnist>xnist))-(?P<role>images|labels)"
    r"-idx(?P<ndim>[23])-(?:ubyte|int)(?:\.gz|\.xz)?$"
)
#: Extended label columns 1-6 and the metadata keys they become.
COLUMNS = ("hsf", "writer", "writer_index", "nist_class", "nist_index", "duplicate")
#: QMNIST test images 0..9,999 are MNIST's test images 0..9,999.
MNIST_TEST_SIZE = 10_000


def _files(path: Path) -> dict[str, dict[str, Path]]:
    folder = path if path.is_dir() else path.parent
    found: dict[str, dict[str, Path]] = {}
    for candidate in sorted(folder.iterdir()):
        match = FILE_NAME.match(candidate.name)
        if match is None or not candidate.is_file():
            continue
        split = match["split"] or "xnist"
        roles = found.setdefault(split, {})
        if match["role"] in roles:
            msg = (
                f"{folder} holds two QMNIST {split} {match['role']} files: "
                f"{roles[match['role']].name} and {candidate.name}"
            )
            raise SourceFormatError(msg)
        roles[match["role"]] = candidate
    if path.is_file():
        own = FILE_NAME.match(path.name)
        wanted = (own["split"] or "xnist") if own else None
        found = {k: v for k, v in found.items() if k == wanted}
    return found


@bounded
def read_qmnist(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read QMNIST images with their extended labels from a folder (or one of its files).

    Returns
    -------
    Decoded
        Splits ``train``, ``test`` and ``xnist`` (those present), with the
        metadata columns of :data:`COLUMNS` in each batch's ``meta``.

    Raises
    ------
    SourceFormatError
        For a missing pair, a labels file that is not N x 8 int32, counts that
        disagree, or a negative class; the message names the file.
    OverBudgetError
        When a file declares more than ``budget`` allows: more images, a longer
        side, or more bytes than ``budget.max_ratio`` times its compressed size.
    """
    found = _files(path)
    if not found:
        msg = (
            f"No QMNIST files found in {path}: expected qmnist-train-images-idx3-ubyte.gz "
            "with qmnist-train-labels-idx2-int.gz"
        )
        raise SourceFormatError(msg)
    plans: list[tuple[str, IdxHeader, IdxHeader]] = []
    for split in ("train", "test", "xnist"):
        if split not in found:
            continue
        roles = found[split]
        if set(roles) != {"images", "labels"}:
            have = next(iter(roles.values())).name
            msg = f"QMNIST {split}: found {have} in {path} but not its pair (images and labels-idx2-int)"
            raise SourceFormatError(msg)
        images = read_header(roles["images"], budget=budget)
        labels = read_header(roles["labels"], budget=budget)
        if len(images.dims) != 3 or images.dtype != ">u1":
            msg = f"{images.name} should hold uint8 images (type 0x08, 3 dims)"
            raise SourceFormatError(msg)
        if labels.dtype != ">i4" or len(labels.dims) != 2 or labels.dims[1] != 8:
            found_dims = "x".join(map(str, labels.dims))
            msg = (
                f"{labels.name} should hold extended labels as int32 N x 8 (type 0x0C), "
                f"found {labels.dtype} {found_dims}"
            )
            raise SourceFormatError(msg)
        if images.count != labels.count:
            msg = f"{images.name} has {images.count:,} images but {labels.name} has {labels.count:,} labels"
            raise SourceFormatError(msg)
        plans.append((split, images, labels))
    decoded = Decoded(
        format="qmnist",
        counts={split: images.count for split, images, _ in plans},
        batches=iter(()),
        dataset="qmnist",
    )
    budget.check_images(sum(images.count for _, images, _ in plans), str(path))
    decoded.batches = _stream(plans, decoded.files, budget)
    return decoded


def _stream(
    plans: list[tuple[str, IdxHeader, IdxHeader]], files: list[SourceFile], budget: ReadBudget
) -> Iterator[Batch]:
    for split, images, labels in plans:
        yield from stream_images(
            images, split, labels, files, budget=budget, fmt="qmnist",
            label_rows=_ExtendedLabels(labels.name, split),
        )  # fmt: skip


class _ExtendedLabels:
    """A block of N x 8 label rows to classes (column 0) and metadata (columns 1-6)."""

    def __init__(self, where: str, split: str) -> None:
        self.where = where
        self.split = split

    def __call__(
        self, rows: npt.NDArray[Any], start: int
    ) -> tuple[npt.NDArray[np.int64], dict[str, npt.NDArray[Any]]]:
        table = rows.astype(np.int64)
        classes = table[:, 0]
        negative = np.flatnonzero(classes < 0)
        if negative.size:
            i = int(negative[0])
            msg = f"{self.where} has class {classes[i]} at index {start + i}: expected 0 or more"
            raise SourceFormatError(msg)
        meta: dict[str, npt.NDArray[Any]] = {
            key: table[:, column] for column, key in enumerate(COLUMNS, start=1)
        }
        if self.split == "test":
            relation = np.full(len(table), None, dtype=object)  # None: no MNIST counterpart
            indices = np.arange(start, start + len(table))
            known = indices < MNIST_TEST_SIZE
            relation[known] = indices[known]
            meta["mnist_test_index"] = relation
        return classes.copy(), meta
