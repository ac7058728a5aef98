"""PNGs whose bytes differ but whose pixels are the same.

A PNG's bytes depend on the deflate that compressed it (:data:`catalog.export.encoders.PNG_DEFLATE`):
files written before the catalog moved to zlib-ng, or by another zlib-ng build
on another machine, hold the same pixels in other bytes. A re-export into the
same folder must not call those files conflicts, so where bytes differ the
writers compare what the files decode to:

- a folder export keeps such a PNG as it is (:class:`~catalog.export.staged.StagedWriter`);
- a parquet file or shard whose images decode the same, and whose other bytes
  (labels, metadata, member names) are equal, is replaced by the new one, so that
  the manifest's per-image digests describe the file on disk.

Decoding is the inverse of :func:`~catalog.export.encoders.encode_pngs`: for an
8-bit grayscale PNG whose rows are all unfiltered (what the catalog writes) it is
the chunks' CRCs checked and one inflate; any other PNG goes through Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The chunks of a PNG as (kind, body) with their CRCs checked, or None."""
    if not data.startswith(_SIGNATURE):
        return None
    chunks = []
    at = len(_SIGNATURE)
    while at + 12 <= len(data):
        (size,) = struct.unpack_from(">I", data, at)
        end = at + 8 + size
        if end + 4 > len(data):
            return None
        kind, body = data[at + 4 : at + 8], data[at + 8 : end]
        if struct.unpack_from(">I", data, end)[0] != zlib.crc32(body, zlib.crc32(kind)):
            return None
        chunks.append((kind, body))
        at = end + 4
        if kind == b"IEND":
            return chunks if at == len(data) else None
    return None


def png_pixels(data: bytes) -> npt.NDArray[np.uint8] | None:
    """The pixels of an 8-bit grayscale PNG, or None when ``data`` is not one: not
    a PNG, damaged (a chunk's CRC, a missing end), or of another colour type or depth."""
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth, colour) != (8, 0):
        return None
    if interlace == 0:
        try:
            raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
        except zlib.error:
            return None
        if len(raw) != height * (width + 1):
            return None
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width + 1)
        if not rows[:, 0].any():  # no row filtered: what encode_pngs writes
            return rows[:, 1:]
    from PIL import Image, UnidentifiedImageError  # filters and interlacing

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image) if image.mode == "L" else None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def same_png(data: bytes, pixels: npt.NDArray[np.uint8]) -> bool:
    """Whether ``data`` is a PNG of exactly ``pixels`` (8-bit grayscale)."""
    decoded = png_pixels(data)
    return (
        decoded is not None
        and decoded.shape == pixels.shape
        and bool(np.array_equal(decoded, pixels))
    )


def same_pngs(old: Sequence[bytes], new: Sequence[bytes]) -> bool:
    """Whether two lists of PNGs hold the same images in the same order (equal
    bytes, or both decoding to the same pixels)."""
    if len(old) != len(new):
        return False
    for before, after in zip(old, new, strict=True):
        if before == after:
            continue
        pixels = png_pixels(after)
        if pixels is None or not same_png(before, pixels):
            return False
    return True
