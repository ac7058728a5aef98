"""Parquet files in the Hugging Face datasets layout (``ylecun/mnist``, ``fashion_mnist``...).

The Hub stores an image dataset as Parquet (https://huggingface.co/docs/datasets/
image_dataset and the ``datasets`` Image feature): a column ``image``, a struct
of ``bytes`` (the encoded PNG) and ``path``; a column ``label`` of integers
(-1 for an example without a label); and, in the file's key-value metadata
under ``huggingface``, the features as JSON, where a ``ClassLabel`` lists the
class ``names``. A split is one file (``train-00000-of-00001.parquet``) or
several shards; a folder may hold several splits.

Rows are read with pyarrow in record batches (``pip install
"mnist-catalog[parquet]"``), as few rows at a time as the read budget's block
holds, pages streamed; each image's size is checked before Pillow decodes it,
then it is converted by :func:`catalog.sources.pixels.to_gray`. Other scalar
columns become per-image metadata. A shard (``train-00000-of-00001.parquet``)
names its dataset after its folder (``mnist/``; ``data/`` is passed over).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import MissingExtraError, SourceFormatError
from catalog.sources import (
    UNLABELED,
    Batch,
    Decoded,
    SourceFile,
    check_name,
    check_split_name,
)
from catalog.sources.guard import bounded, library_errors
from catalog.sources.pixels import open_image, to_gray
from catalog.sources.streams import one_line

#: Most rows per record batch read from a file (fewer when its rows are large).
ROWS = 4096
SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_]+?)(?:-\d{5}-of-\d{5})?(?:-[0-9a-f]+)?$", re.ASCII)
#: A Hugging Face shard: ``<split>-00000-of-00001`` (with an optional ``-<hash>``).
SHARD_OF = re.compile(r"^(?P<stem>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?$", re.ASCII)
#: Folders that hold a dataset's shards without naming it.
PLAIN_FOLDERS = frozenset({"data", "default", "parquet"})
#: Bytes pyarrow reads at a time from a column chunk (pages stream, chunks are not read whole).
_BUFFER = 8 << 20
_CHUNK = 1 << 20


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        msg = 'Reading parquet needs pyarrow: pip install "mnist-catalog[parquet]"'
        raise MissingExtraError(msg) from None
    return pq


def _split_of(path: Path) -> str:
    stem = path.name[: -len(".parquet")]
    match = SHARD.match(stem)
    split = (match["split"] if match else stem).lower()
    return check_split_name(split, str(path))


def dataset_of(path: Path) -> str | None:
    """The dataset a single shard belongs to, or None to name it from ``path`` itself.

    ``mnist/train-00000-of-00001.parquet`` is ``mnist``'s (its folder's, passing over
    a plain ``data/``); ``fashion-train-00000-of-00002.parquet`` is ``fashion``'s.

    >>> dataset_of(Path("mnist/data/train-00000-of-00001.parquet"))
    'mnist'
    >>> dataset_of(Path("x/fashion-train-00000-of-00002-1a2b.parquet"))
    'fashion-train'
    >>> dataset_of(Path("mnist/train.parquet")) is None
    True
    """
    match = SHARD_OF.match(path.name.removesuffix(".parquet"))
    if match is None:
        return None
    name = match["stem"]
    if SHARD.match(name) and name.lower() in SPLIT_WORDS:
        folder = path.absolute().parent
        while folder.name.lower() in PLAIN_FOLDERS and folder.parent != folder:
            folder = folder.parent
        name = folder.name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name, flags=re.ASCII).strip("-._").lower()
    return cleaned[:64] or None


#: Stems that name a split, not a dataset.
SPLIT_WORDS = frozenset({"train", "test", "validation", "valid", "val", "dev", "unlabeled"})


def _class_names(metadata: dict[bytes, bytes] | None) -> dict[int, str] | None:
    if not metadata or b"huggingface" not in metadata:
        return None
    try:
        info = json.loads(metadata[b"huggingface"])
    except ValueError:
        return None
    features = info.get("info", {}).get("features", {}) if isinstance(info, dict) else {}
    label = features.get("label", {}) if isinstance(features, dict) else {}
    names = label.get("names") if isinstance(label, dict) else None
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return dict(enumerate(names))
    return None


def _open(pq: Any, path: Path, budget: ReadBudget) -> tuple[Any, int]:
    """The opened file and how many rows to read at a time, after checking each row
    group's declared size against the budget (its ratio, its bytes a row)."""
    try:
        opened = pq.ParquetFile(path, buffer_size=_BUFFER)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        msg = f"Cannot read {path} as parquet: {' '.join(str(exc).split())}"
        raise SourceFormatError(msg) from None
    meta = opened.metadata
    widest = 1
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        stored = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        budget.check_ratio(f"{path} row group {i}", group.total_byte_size, stored)
        if group.num_rows:
            widest = max(widest, -(-group.total_byte_size // group.num_rows))
    rows = budget.block_rows(widest, f"{path} (rows of its row groups)", ROWS)
    return opened, rows


def _check_schema(path: Path, schema: Any) -> list[str]:
    names = list(schema.names)
    if "image" not in names:
        msg = f"{path} has no image column: expected columns image (struct of bytes, path) and label, found {', '.join(names)}"
        raise SourceFormatError(msg)
    image = schema.field("image").type
    if not hasattr(image, "get_field_index") or image.get_field_index("bytes") < 0:
        msg = f"{path}: expected image as a struct with a bytes field (the Hugging Face Image feature), found {image}"
        raise SourceFormatError(msg)
    if "label" in names and str(schema.field("label").type) not in _INTEGERS:
        found = schema.field("label").type
        msg = f"{path}: expected label as integers (a ClassLabel), found {found}"
        raise SourceFormatError(msg)
    extra = []
    for field in schema:
        if field.name in ("image", "label"):
            continue
        if str(field.type) in (*_INTEGERS[:-1], "string", "large_string"):
            extra.append(field.name)
    return extra


_INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@bounded
def read_parquet(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read Hugging Face parquet files: one file, or a folder of them (searched below it).

    Raises
    ------
    SourceFormatError
        For a file that is not parquet, has no ``image`` struct column, holds an
        image Pillow cannot decode or of another size, a label that is not an
        integer or is below -1, or a page pyarrow cannot read.
    OverBudgetError
        For a row group that inflates past ``budget.max_ratio``, rows larger than
        ``budget.max_block_bytes``, or an image side past ``budget.max_side``.
    MissingExtraError
        When pyarrow is not installed.
    """
    pq = _pyarrow()
    # Only regular files: a FIFO named like a shard would block pyarrow's first read.
    paths = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not paths:
        msg = f"No .parquet files found in {path}"
        raise SourceFormatError(msg)
    plans: list[_Plan] = []
    names: dict[int, str] | None = None
    counts: dict[str, int] = {}
    for file in paths:
        check_name(file)
        opened, rows = _open(pq, file, budget)
        extra = _check_schema(file, opened.schema_arrow)
        split = _split_of(file)
        names = names or _class_names(opened.schema_arrow.metadata)
        counts[split] = counts.get(split, 0) + opened.metadata.num_rows
        plans.append(_Plan(split, file, opened, extra, rows))
    budget.check_images(sum(counts.values()), str(path))
    decoded = Decoded(
        format="parquet",
        counts=counts,
        batches=iter(()),
        label_names=names,
        dataset=dataset_of(path) if path.is_file() else None,
    )
    decoded.batches = _stream(plans, decoded, budget)
    return decoded


@dataclass(frozen=True)
class _Plan:
    split: str
    path: Path
    opened: Any  # pyarrow.parquet.ParquetFile
    extra: list[str]  # metadata columns
    rows: int  # rows per record batch


def _records(plan: _Plan, columns: list[str]) -> Iterator[tuple[int, Any]]:
    """(row of the file, record batch): pyarrow's errors name the file and the row."""
    batches = plan.opened.iter_batches(batch_size=plan.rows, columns=columns)
    row = 0
    while True:
        try:
            record = next(batches)
        except StopIteration:
            return
        except library_errors() as exc:  # a corrupt page, a snappy/zstd error...
            msg = f"Cannot read {plan.path} from row {row:,}: {one_line(exc)}"
            raise SourceFormatError(msg) from None
        yield row, record
        row += record.num_rows


def _labels(plan: _Plan, record: Any, row: int) -> npt.NDArray[np.int64]:
    if "label" not in plan.opened.schema_arrow.names:
        return np.full(record.num_rows, UNLABELED, dtype=np.int64)
    column = record.column("label")
    if column.null_count:
        column = column.fill_null(UNLABELED)
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
        i = int(np.flatnonzero(values > np.iinfo(np.int64).max)[0])
        msg = f"{plan.path} row {row + i}: label {values[i]} does not fit a 32-bit integer"
        raise SourceFormatError(msg)
    labels: npt.NDArray[np.int64] = values.astype(np.int64)
    if labels.size and labels.min() < UNLABELED:
        i = int(np.flatnonzero(labels < UNLABELED)[0])
        msg = f"{plan.path} row {row + i}: label {labels[i]} is below -1 (-1 means no label)"
        raise SourceFormatError(msg)
    return labels


def _stream(plans: list[_Plan], decoded: Decoded, budget: ReadBudget) -> Iterator[Batch]:
    next_index: dict[str, int] = {}
    shape: tuple[int, int] | None = None
    for plan in plans:
        columns = ["image", *(["label"] if "label" in plan.opened.schema_arrow.names else [])]
        conversions: dict[str, int] = {}
        for row, record in _records(plan, [*columns, *plan.extra]):
            start = next_index.get(plan.split, 0)
            blobs = record.column("image").field("bytes").to_pylist()
            labels = _labels(plan, record, row)
            meta = {n: np.array(record.column(n).to_pylist(), dtype=object) for n in plan.extra}
            pixels: list[npt.NDArray[np.uint8]] = []
            held = first = 0
            for offset, blob in enumerate(blobs):
                where = f"{plan.path} row {row + offset}"
                image = _decode(blob, where, budget)
                if shape is not None and image.pixels.shape != shape:
                    msg = f"{where}: image is {image.pixels.shape[1]}x{image.pixels.shape[0]}, expected {shape[1]}x{shape[0]} like the images before it"
                    raise SourceFormatError(msg)
                shape = image.pixels.shape
                if image.conversion:
                    conversions[image.conversion] = conversions.get(image.conversion, 0) + 1
                    if image.lossy and not decoded.warnings:
                        decoded.warnings.append(
                            f"Lossy conversion to 8-bit gray: {where} ({image.conversion})"
                        )
                pixels.append(image.pixels)
                held += image.pixels.nbytes
                if held >= budget.max_block_bytes or offset == len(blobs) - 1:
                    stop = offset + 1
                    yield Batch(
                        split=plan.split,
                        indices=np.arange(start + first, start + stop, dtype=np.int64),
                        labels=labels[first:stop],
                        pixels=np.stack(pixels),
                        meta={n: values[first:stop] for n, values in meta.items()},
                    )
                    pixels, held, first = [], 0, stop
            next_index[plan.split] = start + len(blobs)
        decoded.files.append(_source_file(plan.path, plan.split, conversions))


def _decode(blob: bytes | None, where: str, budget: ReadBudget) -> Any:
    if not blob:
        msg = f"{where}: the image has no bytes"
        raise SourceFormatError(msg)
    try:
        with open_image(blob) as image:
            width, height = image.size
            budget.check_side(height, width, where)  # before its pixels are decoded
            image.load()
            return to_gray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        text = (
            "not a png, jpeg, bmp or pgm image"
            if isinstance(exc, UnidentifiedImageError)
            else " ".join(str(exc).split())
        )
        msg = f"Cannot decode the image at {where}: {text}"
        raise SourceFormatError(msg) from None


def _source_file(path: Path, split: str, conversions: dict[str, int]) -> SourceFile:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    note = None
    if conversions:
        note = "converted to 8-bit gray: " + "; ".join(
            f"{n} x {r}" for r, n in sorted(conversions.items())
        )
    return SourceFile(
        uri=str(path.resolve()), format="parquet", size=path.stat().st_size,
        sha256=sha256.hexdigest(), md5=md5.hexdigest(), role=f"{split} images and labels",
        split=split, note=note, file_md5=md5.hexdigest(), file_sha256=sha256.hexdigest(),
    )  # fmt: skip
