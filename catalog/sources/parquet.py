"""Parquet files in the Hugging Face datasets layout (``ylecun/mnist``, ``fashion_mnist``...).

The Hub stores an image dataset as Parquet (https://huggingface.co/docs/datasets/
image_dataset and the ``datasets`` Image feature): a column ``image``, a struct
of ``bytes`` (the encoded PNG) and ``path``; a column ``label`` of integers
(-1 for an example without a label); and, in the file's key-value metadata
under ``huggingface``, the features as JSON, where a ``ClassLabel`` lists the
class ``names``. A split is one file (``train-00000-of-00001.parquet``) or
several shards; a folder may hold several splits.

Rows are read with pyarrow in record batches (``pip install
"mnist-catalog[parquet]"``); each PNG is decoded with Pillow and converted
by :func:`catalog.sources.pixels.to_gray`. Other scalar columns become
per-image metadata.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from catalog.errors import MissingExtraError, SourceFormatError
from catalog.sources import UNLABELED, Batch, Decoded, SourceFile, check_split_name
from catalog.sources.pixels import to_gray

#: Rows per record batch read from a file.
ROWS = 4096
SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_]+?)(?:-\d{5}-of-\d{5})?(?:-[0-9a-f]+)?$")
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


def _open(pq: Any, path: Path) -> Any:
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        msg = f"Cannot read {path} as parquet: {' '.join(str(exc).split())}"
        raise SourceFormatError(msg) from None


def _check_schema(path: Path, schema: Any) -> list[str]:
    names = list(schema.names)
    if "image" not in names:
        msg = f"{path} has no image column: expected columns image (struct of bytes, path) and label, found {', '.join(names)}"
        raise SourceFormatError(msg)
    image = schema.field("image").type
    if not hasattr(image, "get_field_index") or image.get_field_index("bytes") < 0:
        msg = f"{path}: expected image as a struct with a bytes field (the Hugging Face Image feature), found {image}"
        raise SourceFormatError(msg)
    extra = []
    for field in schema:
        if field.name in ("image", "label"):
            continue
        if str(field.type) in (
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "string",
            "large_string",
        ):
            extra.append(field.name)
    return extra


def read_parquet(path: Path) -> Decoded:
    """Read Hugging Face parquet files: one file, or a folder of them (searched below it).

    Raises
    ------
    SourceFormatError
        For a file that is not parquet, has no ``image`` struct column, holds an
        image Pillow cannot decode or of another size, or a label below -1.
    MissingExtraError
        When pyarrow is not installed.
    """
    pq = _pyarrow()
    paths = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not paths:
        msg = f"No .parquet files found in {path}"
        raise SourceFormatError(msg)
    plans: list[tuple[str, Path, Any, list[str]]] = []
    names: dict[int, str] | None = None
    counts: dict[str, int] = {}
    for file in paths:
        opened = _open(pq, file)
        extra = _check_schema(file, opened.schema_arrow)
        split = _split_of(file)
        names = names or _class_names(opened.schema_arrow.metadata)
        counts[split] = counts.get(split, 0) + opened.metadata.num_rows
        plans.append((split, file, opened, extra))
    decoded = Decoded(format="parquet", counts=counts, batches=iter(()), label_names=names)
    decoded.batches = _stream(plans, decoded)
    return decoded


def _stream(plans: list[tuple[str, Path, Any, list[str]]], decoded: Decoded) -> Iterator[Batch]:
    next_index: dict[str, int] = {}
    shape: tuple[int, int] | None = None
    conversions: dict[str, int] = {}
    for split, path, opened, extra in plans:
        has_label = "label" in opened.schema_arrow.names
        columns = ["image", *(["label"] if has_label else []), *extra]
        file_conversions: dict[str, int] = {}
        for record in opened.iter_batches(batch_size=ROWS, columns=columns):
            start = next_index.get(split, 0)
            blobs = record.column("image").field("bytes").to_pylist()
            pixels = []
            for offset, blob in enumerate(blobs):
                where = f"{path} row {start + offset}"
                image = _decode(blob, where)
                if shape is not None and image.pixels.shape != shape:
                    msg = f"{where}: image is {image.pixels.shape[1]}x{image.pixels.shape[0]}, expected {shape[1]}x{shape[0]} like the images before it"
                    raise SourceFormatError(msg)
                shape = image.pixels.shape
                if image.conversion:
                    file_conversions[image.conversion] = (
                        file_conversions.get(image.conversion, 0) + 1
                    )
                    if image.lossy and not decoded.warnings:
                        decoded.warnings.append(
                            f"Lossy conversion to 8-bit gray: {where} ({image.conversion})"
                        )
                pixels.append(image.pixels)
            labels = (
                np.asarray(record.column("label").fill_null(UNLABELED).to_numpy(), dtype=np.int64)
                if has_label
                else np.full(len(blobs), UNLABELED, dtype=np.int64)
            )
            if labels.size and labels.min() < UNLABELED:
                i = int(np.flatnonzero(labels < UNLABELED)[0])
                msg = f"{path} row {start + i}: label {labels[i]} is below -1 (-1 means no label)"
                raise SourceFormatError(msg)
            meta = {name: np.array(record.column(name).to_pylist(), dtype=object) for name in extra}
            next_index[split] = start + len(blobs)
            yield Batch(
                split=split,
                indices=np.arange(start, start + len(blobs), dtype=np.int64),
                labels=labels,
                pixels=np.stack(pixels) if pixels else np.zeros((0, 1, 1), dtype=np.uint8),
                meta=meta,
            )
        for rule, n in file_conversions.items():
            conversions[rule] = conversions.get(rule, 0) + n
        decoded.files.append(_source_file(path, split, file_conversions))


def _decode(blob: bytes | None, where: str) -> Any:
    if not blob:
        msg = f"{where}: the image has no bytes"
        raise SourceFormatError(msg)
    try:
        with Image.open(io.BytesIO(blob), formats=("PNG", "JPEG", "BMP", "PPM")) as image:
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
