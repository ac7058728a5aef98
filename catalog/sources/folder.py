"""Read a folder of image files, one digit per file, in one of two layouts.

``classic``
    ``ROOT/<split>/<index:06d>_<label>.<ext>``: what the old pyplot recipe and
    ``catalog export`` write.
``by-label``
    ``ROOT/<split>/<label>/<name>.<ext>``. An image's index is its integer stem
    when every stem in the split is an integer (``000123.png``), otherwise its
    position in the split sorted by (label, name).

The layout is detected from the folders: a split holding folders is by-label,
one holding files is classic. Images (png, jpg, jpeg, bmp, pgm) are converted to
8-bit grayscale. The whole listing is checked before any image is decoded
(split and label names, names that do not parse, duplicate indices, symlinks
leading outside ROOT), so split sizes are known up front; images are then
decoded in batches, in sorted relative-path order.

Provenance is one :class:`~catalog.sources.SourceFile` for the folder, added
when the last batch is read: its size is the bytes of all images, and its
digests are over, for each file in sorted relative-path order, the UTF-8
relative path, a NUL byte, the file's length as 8 big-endian bytes, and its bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from catalog.errors import SourceFormatError
from catalog.sources import (
    BATCH_SIZE,
    IMAGE_SUFFIXES,
    UNLABELED,
    Batch,
    Decoded,
    SourceFile,
    check_split_name,
)
from catalog.sources.pixels import to_gray

CLASSIC = "classic"
#: The by-label folder of images without a label (what export writes for them).
UNLABELED_FOLDER = "unlabeled"
BY_LABEL = "by-label"

#: Pillow plugins allowed to decode (PPM reads pgm).
PIL_FORMATS = ("PNG", "JPEG", "BMP", "PPM")

#: Largest image accepted, in pixels, and most pixel bytes in one batch.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_BATCH_BYTES = 64 * 1024 * 1024

CLASSIC_NAME = re.compile(r"^(\d{1,18})_(\d+)(\.[^.]+)$")
INTEGER_STEM = re.compile(r"^\d{1,18}$")
SUFFIXES = "|".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))

#: What Pillow raises on a malformed or truncated image.
_BAD_IMAGE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


@dataclass
class _Split:
    """The listing of one split: files in sorted relative-path order."""

    name: str
    rels: list[str] = field(default_factory=list)  # relative to ROOT, '/'-separated
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)  # by-label only
    indices: list[int] = field(default_factory=list)


class _Lister:
    """List ROOT's entries, refusing symlinks that lead outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.real_root = root.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            msg = f"Cannot read folder {root}: {exc}"
            raise SourceFormatError(msg) from None
        if not self.real_root.is_dir():
            msg = f"Cannot read folder {root}: expected a directory, found a file"
            raise SourceFormatError(msg)

    def entries(self, folder: str, rel: str) -> list[tuple[str, str, bool]]:
        """Return (relative path, path, is_dir) of ``folder``'s non-hidden entries, sorted."""
        try:
            with os.scandir(folder) as scan:
                found = sorted(
                    (e for e in scan if not e.name.startswith(".")), key=lambda e: e.name
                )
            result = []
            for entry in found:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    self._check_link(entry.path, child)
                result.append((child, entry.path, entry.is_dir()))
        except OSError as exc:
            msg = f"Cannot list {rel or '.'} in {self.root}: {exc.strerror or exc}"
            raise SourceFormatError(msg) from None
        return result

    def _check_link(self, path: str, rel: str) -> None:
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(self.real_root):
            msg = (
                f"Refusing to read {rel} in {self.root}: it is a symlink to {target}, "
                "outside the folder"
            )
            raise SourceFormatError(msg)


def _image_suffix(root: Path, rel: str, suffix: str) -> None:
    if suffix.lower() not in IMAGE_SUFFIXES:
        msg = f"Unexpected file {rel} in {root}: expected an image ending in .{SUFFIXES.replace('|', ', .')}"
        raise SourceFormatError(msg)


def _label(root: Path, rel: str, text: str) -> int:
    if text == UNLABELED_FOLDER:
        return UNLABELED
    if (
        not text.isdigit()
        or not text.isascii()
        or len(text) > 5
        or (len(text) > 1 and text[0] == "0")
    ):
        msg = f"Invalid label in {rel} in {root}: expected a number such as 0-9, found {text}"
        raise SourceFormatError(msg)
    return int(text)


def _list_classic(root: Path, split: _Split, files: list[tuple[str, str, bool]]) -> None:
    for rel, path, is_dir in files:
        name = rel.rsplit("/", 1)[1]
        match = CLASSIC_NAME.match(name)
        if is_dir or match is None:
            msg = (
                f"Cannot parse image name {rel} in {root}: expected "
                f"<index>_<label>.<{SUFFIXES}> as in 000123_7.png"
            )
            raise SourceFormatError(msg)
        _image_suffix(root, rel, match.group(3))
        split.rels.append(rel)
        split.paths.append(path)
        split.indices.append(int(match.group(1)))
        split.labels.append(_label(root, rel, match.group(2)))


def _list_by_label(
    root: Path, lister: _Lister, split: _Split, folders: list[tuple[str, str, bool]]
) -> None:
    for rel, path, is_dir in folders:
        name = rel.rsplit("/", 1)[1]
        if not is_dir or not ((name.isdigit() and name.isascii()) or name == UNLABELED_FOLDER):
            msg = (
                f"Unexpected {'folder' if is_dir else 'file'} {rel} in {root}: expected only "
                f"label folders 0-9 (or other numbers, or {UNLABELED_FOLDER}) in a by-label split"
            )
            raise SourceFormatError(msg)
        label = _label(root, rel, name)
        for file_rel, file_path, file_is_dir in lister.entries(path, rel):
            stem, dot, suffix = file_rel.rsplit("/", 1)[1].rpartition(".")
            if file_is_dir or not dot or not stem:
                msg = (
                    f"Unexpected {'folder' if file_is_dir else 'file'} {file_rel} in {root}: "
                    f"expected images <name>.<{SUFFIXES}> in label folders"
                )
                raise SourceFormatError(msg)
            _image_suffix(root, file_rel, "." + suffix)
            split.rels.append(file_rel)
            split.paths.append(file_path)
            split.labels.append(label)
            split.stems.append(stem)
    if all(INTEGER_STEM.match(stem) for stem in split.stems):
        split.indices = [int(stem) for stem in split.stems]
    else:
        split.indices = list(range(len(split.stems)))


def _check_unique(root: Path, split: _Split) -> None:
    seen: dict[int, str] = {}
    for rel, index in zip(split.rels, split.indices, strict=True):
        other = seen.setdefault(index, rel)
        if other != rel:
            msg = f"Duplicate index {index} in split {split.name} of {root}: {other} and {rel}"
            raise SourceFormatError(msg)


def _list(root: Path) -> tuple[str, list[_Split]]:
    """Return the layout and the splits of ``root``, every name checked."""
    lister = _Lister(root)
    split_dirs = [(rel, path) for rel, path, is_dir in lister.entries(str(root), "") if is_dir]
    # Sort by "<split>/" so that files come in sorted relative-path order overall.
    split_dirs.sort(key=lambda item: item[0] + "/")
    layouts: dict[str, str] = {}
    splits = []
    for rel, path in split_dirs:
        split = _Split(check_split_name(rel, str(root)))
        children = lister.entries(path, rel)
        if any(is_dir for _, _, is_dir in children):
            layouts[rel] = BY_LABEL
            _list_by_label(root, lister, split, children)
        elif children:
            layouts[rel] = CLASSIC
            _list_classic(root, split, children)
        _check_unique(root, split)
        splits.append(split)
    if len(set(layouts.values())) > 1:
        found = ", ".join(f"{split} is {layout}" for split, layout in layouts.items())
        msg = f"Mixed layouts in {root}: expected one layout for all splits, found {found}"
        raise SourceFormatError(msg)
    if not layouts:
        msg = (
            f"No images found in {root}: expected <split>/<index>_<label>.png "
            "or <split>/<label>/<name>.png"
        )
        raise SourceFormatError(msg)
    return next(iter(layouts.values())), splits


class _Decoder:
    """Decode a folder's images in batches while hashing its files."""

    def __init__(self, root: Path, layout: str, splits: list[_Split], files: list[SourceFile]):
        self.root = root
        self.layout = layout
        self.splits = splits
        self.files = files
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()  # the digest MNIST mirrors publish
        self.size = 0
        self.shape: tuple[int, int] | None = None
        self.conversions: dict[str, int] = {}  # rule -> images converted by it
        self.first_lossy: str | None = None
        self.lossy = 0
        self.warnings: list[str] = []

    def _image(self, rel: str, path: str) -> npt.NDArray[np.uint8]:
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as exc:
            msg = f"Cannot read image {rel} in {self.root}: {exc.strerror or exc}"
            raise SourceFormatError(msg) from None
        header = rel.encode() + b"\0" + len(data).to_bytes(8, "big")
        for digest in (self.sha256, self.md5):
            digest.update(header)
            digest.update(data)
        self.size += len(data)
        try:
            with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as image:
                width, height = image.size
                if self.shape is not None and self.shape != (height, width):
                    msg = (
                        f"Image {rel} in {self.root} is {width}x{height}, expected "
                        f"{self.shape[1]}x{self.shape[0]} like the images before it"
                    )
                    raise SourceFormatError(msg)
                if width * height > MAX_IMAGE_PIXELS:
                    msg = (
                        f"Image {rel} in {self.root} is {width}x{height}, expected at most "
                        f"{MAX_IMAGE_PIXELS} pixels"
                    )
                    raise SourceFormatError(msg)
                image.load()
                converted = to_gray(image)
        except _BAD_IMAGE as exc:
            if isinstance(exc, UnidentifiedImageError):
                text = "not a png, jpeg, bmp or pgm image"
            else:
                text = " ".join(str(exc).split()) or type(exc).__name__
            msg = f"Cannot decode image {rel} in {self.root}: {text}"
            raise SourceFormatError(msg) from None
        self.shape = (height, width)
        if converted.conversion:
            self.conversions[converted.conversion] = (
                self.conversions.get(converted.conversion, 0) + 1
            )
            if converted.lossy:
                self.lossy += 1
                self.first_lossy = self.first_lossy or f"{rel} ({converted.conversion})"
        return converted.pixels

    def batches(self) -> Iterator[Batch]:
        for split in self.splits:
            count = len(split.rels)
            start = 0
            while start < count:
                first = self._image(split.rels[start], split.paths[start])
                rows = max(1, min(BATCH_SIZE, MAX_BATCH_BYTES // first.size))
                stop = min(start + rows, count)
                pixels = np.empty((stop - start, *first.shape), dtype=np.uint8)
                pixels[0] = first
                for row in range(1, stop - start):
                    i = start + row
                    pixels[row] = self._image(split.rels[i], split.paths[i])
                yield Batch(
                    split=split.name,
                    indices=np.array(split.indices[start:stop], dtype=np.int64),
                    labels=np.array(split.labels[start:stop], dtype=np.int64),
                    pixels=pixels,
                )
                start = stop
        self.files.append(
            SourceFile(
                uri=str(self.root.resolve()),
                format=f"folder/{self.layout}",
                size=self.size,
                sha256=self.sha256.hexdigest(),
                md5=self.md5.hexdigest(),
                role="images",
                note=self.note(),
            )
        )
        if self.first_lossy is not None:
            self.warnings.append(
                f"Lossy conversion to 8-bit gray in {self.root}: {self.lossy} image(s) lost "
                f"information, first {self.first_lossy}"
            )

    def note(self) -> str | None:
        """Which conversions were applied, to how many images (None when none)."""
        if not self.conversions:
            return None
        rules = "; ".join(f"{n} x {rule}" for rule, n in sorted(self.conversions.items()))
        return f"converted to 8-bit gray: {rules}"


def read_folder(path: Path) -> Decoded:
    """Read a folder of digit images laid out by split, as ``classic`` or ``by-label``.

    Parameters
    ----------
    path
        ROOT, holding one folder per split.

    Returns
    -------
    Decoded
        Format ``folder/classic`` or ``folder/by-label``; split sizes from the
        listing; batches in sorted relative-path order. The folder's
        :class:`SourceFile` is added once the last batch has been read.

    Raises
    ------
    SourceFormatError
        When the listing is wrong (a name that does not parse, a label outside
        0-9, a duplicate index, mixed layouts, a symlink leading outside ROOT),
        or, while batches are read, when an image cannot be decoded or its size
        differs from the others. Each message names the file.
    InvalidNameError
        When a split folder's name is not a valid split name.
    """
    layout, splits = _list(path)
    files: list[SourceFile] = []
    decoder = _Decoder(path, layout, splits, files)
    return Decoded(
        format=f"folder/{layout}",
        counts={split.name: len(split.rels) for split in splits},
        batches=decoder.batches(),
        files=files,
        warnings=decoder.warnings,
    )
