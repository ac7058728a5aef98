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
(split and label names, names that do not parse or are not UTF-8, duplicate
indices, symlinks leading outside ROOT, entries that are not regular files,
more files than the read budget's images), so split sizes are known up front;
images are then decoded in batches of at most the budget's block bytes, in
sorted relative-path order. Only regular files are opened (a FIFO would block,
a device never end), and an image's size is checked before its pixels are decoded.

Provenance is one :class:`~catalog.sources.SourceFile` for the folder, added
when the last batch is read: its size is the bytes of all images, and its
digests are over, for each file in sorted relative-path order, the UTF-8
relative path, a NUL byte, the file's length as 8 big-endian bytes, and its bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import BATCH_SIZE, Batch, Decoded, SourceFile
from catalog.sources.folder_listing import Split, list_folder
from catalog.sources.guard import bounded
from catalog.sources.pixels import open_image, to_gray

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


class _Decoder:
    """Decode a folder's images in batches while hashing its files."""

    def __init__(
        self,
        root: Path,
        layout: str,
        splits: list[Split],
        files: list[SourceFile],
        budget: ReadBudget,
    ) -> None:
        self.root = root
        self.budget = budget
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

    def _read(self, rel: str, path: str) -> bytes:
        """The bytes of a regular file of at most a block's bytes (non-blocking open:
        a FIFO put in its place after the listing cannot hang the read)."""
        most = self.budget.max_block_bytes
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    msg = f"Refusing to read {rel} in {self.root}: it is not a regular file"
                    raise SourceFormatError(msg)
                data = stream.read(most + 1)
        except OSError as exc:
            msg = f"Cannot read image {rel} in {self.root}: {exc.strerror or exc}"
            raise SourceFormatError(msg) from None
        if len(data) > most:
            self.budget.refuse("max_block_bytes", f"Image file {rel} in {self.root} has more")
        return data

    def _image(self, rel: str, path: str) -> npt.NDArray[np.uint8]:
        data = self._read(rel, path)
        header = rel.encode() + b"\0" + len(data).to_bytes(8, "big")
        for digest in (self.sha256, self.md5):
            digest.update(header)
            digest.update(data)
        self.size += len(data)
        try:
            with open_image(data) as image:
                width, height = image.size
                if self.shape is not None and self.shape != (height, width):
                    msg = (
                        f"Image {rel} in {self.root} is {width}x{height}, expected "
                        f"{self.shape[1]}x{self.shape[0]} like the images before it"
                    )
                    raise SourceFormatError(msg)
                self.budget.check_side(height, width, f"Image {rel} in {self.root}")
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
                rows = self.budget.block_rows(first.size, f"Image {split.rels[start]}", BATCH_SIZE)
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


@bounded
def read_folder(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
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
    OverBudgetError
        For more files than ``budget.max_images``, an image file larger than
        ``budget.max_block_bytes`` or a side longer than ``budget.max_side``.
    """
    layout, splits = list_folder(path, budget)
    files: list[SourceFile] = []
    decoder = _Decoder(path, layout, splits, files, budget)
    return Decoded(
        format=f"folder/{layout}",
        counts={split.name: len(split.rels) for split in splits},
        batches=decoder.batches(),
        files=files,
        warnings=decoder.warnings,
    )
