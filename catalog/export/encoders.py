"""Image files from pixels: a direct PNG writer for speed, Pillow for JPG and BMP."""

from __future__ import annotations

import io
import struct
import zlib
from types import ModuleType

import numpy as np
import numpy.typing as npt
from PIL import Image


def _png_deflate() -> tuple[ModuleType, int, str]:
    """The deflate that PNGs are compressed with: zlib-ng at level 1 when it is
    installed (a core dependency), else the standard library's zlib at level 3.

    On MNIST's 28x28 digits (812 bytes of rows each), CPU per image: zlib-ng level 1
    6.5 us (218 bytes), stock zlib level 1 17 us (205 bytes), level 3 19 us (197
    bytes); ``isal`` level 0 2.4 us but 350 bytes, level 1 13 us. Any inflate reads
    them all.
    """
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # pragma: no cover - zlib-ng is a dependency; a build without it
        return zlib, 3, f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 3"
    return zlib_ng, 1, f"zlib-ng {zlib_ng.ZLIBNG_VERSION} level 1"


# ``PNG_LEVEL`` is the level of that deflate, ``PNG_DEFLATE`` names both. A PNG's
# bytes are the same on every run with one zlib-ng build, but zlib-ng (like zlib
# across versions) may compress differently on another machine, so exports compare
# a file already in place that differs by its pixels
# (:mod:`catalog.export.samepixels`).
_DEFLATE, PNG_LEVEL, PNG_DEFLATE = _png_deflate()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = _png_chunk(b"IEND", b"")
_IDAT_CRC = zlib.crc32(b"IDAT")


def encode_pngs(pixels: npt.NDArray[np.uint8]) -> list[bytes]:
    """8-bit grayscale PNGs of a block of same-size images, byte for byte deterministic.

    PNG is simple enough to write directly: signature, IHDR, one zlib IDAT of
    the rows (each led by filter byte 0), IEND. The header is built once per
    block and the filter bytes added to the whole block at once, leaving one
    deflate call per image (:data:`PNG_DEFLATE`): about 7 us per 28x28 digit,
    where Pillow's ``Image.save`` takes about 200.
    """
    n, height, width = pixels.shape
    head = _PNG_SIGNATURE + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    rows = np.zeros((n, height, width + 1), dtype=np.uint8)
    rows[:, :, 1:] = pixels
    # Slices of one buffer, one deflate each, then each file in one formatting
    # (a third less time around the deflate than per-image tobytes and join).
    step = height * (width + 1)
    flat = rows.reshape(-1).data
    compress, level, crc32 = _DEFLATE.compress, PNG_LEVEL, zlib.crc32
    idats = [compress(flat[at : at + step], level) for at in range(0, n * step, step)]
    return [
        b"%s%sIDAT%s%s%s" % (
            head, len(idat).to_bytes(4, "big"), idat, crc32(idat, _IDAT_CRC).to_bytes(4, "big"),
            _PNG_END,
        )
        for idat in idats
    ]  # fmt: skip


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG of one image (see :func:`encode_pngs`)."""
    return encode_pngs(pixels[np.newaxis])[0]


def encode_pgm(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A binary (P5) PGM of ``pixels``."""
    height, width = pixels.shape
    return b"P5\n%d %d\n255\n" % (width, height) + pixels.tobytes()


def encode_with_pillow(pixels: npt.NDArray[np.uint8], fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="L")
    if fmt == "jpg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="BMP")
    return buffer.getvalue()


def encode(pixels: npt.NDArray[np.uint8], fmt: str, quality: int = 95) -> bytes:
    """Encode one image as ``fmt`` (png, jpg, bmp or pgm)."""
    return encode_many(pixels[np.newaxis], fmt, quality)[0]


def encode_many(pixels: npt.NDArray[np.uint8], fmt: str, quality: int = 95) -> list[bytes]:
    """Encode a block of same-size images as ``fmt`` (png, jpg, bmp or pgm)."""
    if fmt == "png":
        return encode_pngs(pixels)
    if fmt == "pgm":
        return [encode_pgm(image) for image in pixels]
    return [encode_with_pillow(image, fmt, quality) for image in pixels]
