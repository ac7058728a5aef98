"""Images as CSV rows: one image per line, pixel values as decimal integers.

Three layouts are common, and all are read:

- Kaggle's *Digit Recognizer* (https://www.kaggle.com/competitions/digit-recognizer/data):
  ``train.csv`` has a header ``label,pixel0,...,pixel783``; ``test.csv`` has
  ``pixel0,...,pixel783`` and no labels (its images are stored unlabeled);
- the headerless ``mnist_train.csv`` / ``mnist_test.csv`` (pjreddie.com,
  "MNIST in CSV"): the label, then 784 pixel values, on every line;
- the header ``label,1x1,1x2,...,28x28`` of the same files on Kaggle.

Pixel columns (``pixelN`` or ``RxC``) must be a square number of them; other
named columns become per-image metadata. Files are streamed in blocks of
lines sized in bytes (:attr:`~catalog.budget.ReadBudget.max_block_bytes`),
never loaded whole, a line at most
:attr:`~catalog.budget.ReadBudget.max_line_bytes` long, and may be
gzipped. A file's split is taken from its name (``train``, ``test``, ``val``;
else its stem). Errors name the line: values outside 0-255, a label that does
not fit 32 bits, rows of another length, a non-square pixel count, a line too long.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, INT32_MAX, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import (
    BATCH_SIZE,
    UNLABELED,
    Batch,
    Decoded,
    HashingReader,
    SourceFile,
    check_name,
    check_split_name,
)
from catalog.sources.guard import bounded
from catalog.sources.streams import bounded_lines, one_line, open_stream

PIXEL_NAME = re.compile(r"^(?:pixel\d+|\d+x\d+)$")
INTEGER = re.compile(rb"^\s*-?\d+\s*$")
SPLIT_WORDS = (("train", "train"), ("test", "test"), ("valid", "val"), ("val", "val"))


@dataclass(frozen=True)
class _Layout:
    path: Path
    split: str
    header: bool  # the first line names the columns
    columns: int  # fields per line
    label: int | None  # column of the label, None for an unlabeled file
    pixels: tuple[int, int]  # first and last+1 column of the pixels (contiguous)
    side: int
    extra: tuple[tuple[int, str], ...]  # (column, name) of metadata columns
    count: int  # data lines


def _split_of(path: Path) -> str:
    stem = path.name.lower().split(".")[0]
    for word, split in SPLIT_WORDS:
        if re.search(rf"(?:^|[^a-z]){word}(?:$|[^a-z])", stem):
            return split
    return check_split_name(re.sub(r"[^a-z0-9_-]", "-", stem) or "data", str(path))


def _fields(line: bytes, where: Path, number: int) -> list[str]:
    try:
        return next(csv.reader([line.decode("utf-8", "replace")]))
    except csv.Error as exc:  # e.g. a field past the csv module's limit (131,072 characters)
        msg = f"{where} line {number:,}: cannot split the line into fields ({one_line(exc)})"
        raise SourceFormatError(msg) from None


def _layout(path: Path, budget: ReadBudget) -> _Layout:
    stream, _ = open_stream(path, budget=budget)
    with stream:
        first = b""
        count = 0
        for _, line in bounded_lines(io.BufferedReader(_Raw(stream)), str(path), budget):
            if not line.strip():
                continue
            if not first:
                first = line
            count += 1
            if count > budget.max_images + 1:  # + 1: the header
                budget.check_images(count - 1, str(path), "lines of images or more")
    if not first:
        msg = f"{path} has no lines: expected a CSV of images, one per line"
        raise SourceFormatError(msg)
    names = [name.strip() for name in _fields(first, path, 1)]
    header = not all(INTEGER.match(name.encode()) for name in names)
    if not header:
        side = math.isqrt(len(names) - 1)
        if len(names) < 2 or side * side != len(names) - 1:
            msg = (
                f"{path} line 1: expected a label and a square number of pixel values "
                f"(784 = 28x28), found {len(names) - 1} values after the label"
            )
            raise SourceFormatError(msg)
        budget.check_side(side, side, f"{path} line 1")
        return _Layout(
            path, _split_of(path), False, len(names), 0, (1, len(names)), side, (), count
        )
    pixel_columns = [i for i, name in enumerate(names) if PIXEL_NAME.match(name)]
    if not pixel_columns or pixel_columns != list(range(pixel_columns[0], pixel_columns[-1] + 1)):
        msg = f"{path} line 1: expected pixel columns pixel0..pixelN or 1x1..RxC side by side"
        raise SourceFormatError(msg)
    side = math.isqrt(len(pixel_columns))
    if side * side != len(pixel_columns):
        msg = (
            f"{path} line 1: expected a square number of pixel columns (784 = 28x28), "
            f"found {len(pixel_columns)}"
        )
        raise SourceFormatError(msg)
    budget.check_side(side, side, f"{path} line 1")
    lowered = [name.lower() for name in names]
    label = lowered.index("label") if "label" in lowered else None
    extra = tuple(
        (i, name) for i, name in enumerate(names) if i != label and i not in pixel_columns
    )
    return _Layout(
        path, _split_of(path), True, len(names), label,
        (pixel_columns[0], pixel_columns[-1] + 1), side, extra, count - 1,
    )  # fmt: skip


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(
        p for p in path.iterdir()
        if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz"))
        and not p.name.lower().split(".")[0].endswith("classmap")
    )  # fmt: skip
    for file in found:
        check_name(file)
    if not found:
        msg = f"No CSV files found in {path}: expected train.csv, test.csv or mnist_train.csv"
        raise SourceFormatError(msg)
    return found


@bounded
def read_csv(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read images from a CSV file, or from every ``.csv`` in a folder (one split each).

    Returns
    -------
    Decoded
        One split per file, sizes counted in a first pass over the lines;
        unlabeled files give :data:`~catalog.sources.UNLABELED` labels; extra
        columns come as batch metadata.

    Raises
    ------
    SourceFormatError
        Naming the file and line: a value outside 0-255 or not an integer, a
        row with another number of fields, a non-square pixel count, two files
        for one split, or files of different image sizes.
    OverBudgetError
        For a line longer than ``budget.max_line_bytes``, more lines than
        ``budget.max_images``, a side longer than ``budget.max_side``, or a gzip
        that inflates past ``budget.max_ratio``.
    """
    layouts = [_layout(file, budget) for file in _files(path)]
    splits = [layout.split for layout in layouts]
    if len(set(splits)) != len(splits):
        msg = f"{path} holds more than one CSV file per split: {', '.join(p.name for p in _files(path))}"
        raise SourceFormatError(msg)
    if len({layout.side for layout in layouts}) > 1:
        found = ", ".join(f"{lay.path.name} {lay.side}x{lay.side}" for lay in layouts)
        msg = f"CSV files in {path} hold images of different sizes: {found}"
        raise SourceFormatError(msg)
    decoded = Decoded(
        format="csv", counts={lay.split: lay.count for lay in layouts}, batches=iter(())
    )
    budget.check_images(decoded.total, str(path))
    decoded.batches = _stream(layouts, decoded.files, budget)
    return decoded


def _stream(layouts: list[_Layout], files: list[SourceFile], budget: ReadBudget) -> Iterator[Batch]:
    for layout in layouts:
        raw, compressed = open_stream(layout.path, budget=budget)
        with raw:
            hashing = HashingReader(raw)
            yield from _batches(layout, io.BufferedReader(_Raw(hashing)), budget)
        files.append(
            SourceFile(
                uri=str(layout.path.resolve()),
                format="csv.gz" if compressed else "csv",
                size=layout.path.stat().st_size,
                sha256=hashing.sha256.hexdigest(),
                md5=hashing.md5.hexdigest(),
                role=f"{layout.split} images"
                + ("" if layout.label is not None else " (unlabeled)"),
                split=layout.split,
            )
        )


class _Raw(io.RawIOBase):
    """A hashing reader as a raw stream, so that a BufferedReader can split lines."""

    def __init__(self, source: HashingReader | BinaryIO) -> None:
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _batches(layout: _Layout, stream: BinaryIO, budget: ReadBudget) -> Iterator[Batch]:
    # A block costs its text and its parsed values (8 bytes each): both are bounded.
    rows = budget.block_rows(layout.columns * 8, str(layout.path), BATCH_SIZE)
    start = 0
    block: list[bytes] = []
    numbers: list[int] = []
    text = 0
    for line_number, line in bounded_lines(stream, str(layout.path), budget):
        if not line.strip() or (layout.header and line_number == 1):
            continue
        block.append(line)
        numbers.append(line_number)
        text += len(line)
        if len(block) == rows or text >= budget.max_block_bytes // 2:
            yield _parse(layout, block, numbers, start)
            start += len(block)
            block, numbers, text = [], [], 0
    if block:
        yield _parse(layout, block, numbers, start)


def _parse(layout: _Layout, block: list[bytes], numbers: list[int], start: int) -> Batch:
    n = len(block)
    where = layout.path
    if layout.extra:
        rows = [_fields(line, where, number) for line, number in zip(block, numbers, strict=True)]
        for row, number in zip(rows, numbers, strict=True):
            if len(row) != layout.columns:
                msg = f"{where} line {number}: expected {layout.columns} values, found {len(row)}"
                raise SourceFormatError(msg)
        numeric_columns = [c for c in range(layout.columns) if c not in dict(layout.extra)]
        text = ",".join(",".join(row[c] for c in numeric_columns) for row in rows).encode()
        width = len(numeric_columns)
    else:
        for line, number in zip(block, numbers, strict=True):
            if line.count(b",") != layout.columns - 1:
                msg = f"{where} line {number}: expected {layout.columns} values, found {line.count(b',') + 1}"
                raise SourceFormatError(msg)
        text = b",".join(block)
        width = layout.columns
        rows = []
    values = _integers(text, n * width)
    if values is None:
        _raise_first_bad_line(layout, block, numbers)
    table = values.reshape(n, width)  # type: ignore[union-attr]
    label_col = None if layout.label is None else _position(layout, layout.label)
    first, stop = _position(layout, layout.pixels[0]), _position(layout, layout.pixels[1] - 1) + 1
    pixels = table[:, first:stop]
    bad = np.flatnonzero((pixels < 0).any(axis=1) | (pixels > 255).any(axis=1))
    if bad.size:
        row = pixels[bad[0]]
        value = row[(row < 0) | (row > 255)][0]
        msg = f"{where} line {numbers[bad[0]]}: pixel value {value} is outside 0-255"
        raise SourceFormatError(msg)
    if label_col is None:
        labels = np.full(n, UNLABELED, dtype=np.int64)
    else:
        labels = table[:, label_col].astype(np.int64)
        too_big = np.flatnonzero(labels > INT32_MAX)  # numpy clamps past int64 to its largest
        if too_big.size:
            i = int(too_big[0])
            found = _fields(block[i], where, numbers[i])[layout.label or 0].strip()
            msg = (
                f"{where} line {numbers[i]}: label {found} does not fit a 32-bit integer "
                f"(expected 0-{INT32_MAX:,})"
            )
            raise SourceFormatError(msg)
        negative = np.flatnonzero(labels < 0)
        if negative.size:
            msg = f"{where} line {numbers[negative[0]]}: label {labels[negative[0]]} is negative"
            raise SourceFormatError(msg)
    meta = {
        name: np.array([row[column] for row in rows], dtype=object) for column, name in layout.extra
    }
    return Batch(
        split=layout.split,
        indices=np.arange(start, start + n, dtype=np.int64),
        labels=labels,
        pixels=pixels.astype(np.uint8).reshape(n, layout.side, layout.side),
        meta=meta,
    )


def _position(layout: _Layout, column: int) -> int:
    """Where ``column`` lands once the metadata columns are taken out."""
    return column - sum(1 for extra, _ in layout.extra if extra < column)


def _integers(text: bytes, expected: int) -> npt.NDArray[np.int64] | None:
    """Parse comma-separated integers in C; None when any field is not one."""
    if not re.fullmatch(rb"[0-9,\s+-]*", text):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.fromstring(text, dtype=np.int64, sep=",")
    return values if len(values) == expected else None


def _raise_first_bad_line(layout: _Layout, block: list[bytes], numbers: list[int]) -> None:
    skip = {column for column, _ in layout.extra}
    for line, number in zip(block, numbers, strict=True):
        for column, value in enumerate(_fields(line, layout.path, number)):
            if column not in skip and not INTEGER.match(value.encode()):
                msg = f"{layout.path} line {number}: expected an integer in column {column + 1}, found {value!r}"
                raise SourceFormatError(msg)
    msg = f"{layout.path}: cannot parse the lines {numbers[0]}-{numbers[-1]} as integers"
    raise SourceFormatError(msg)
