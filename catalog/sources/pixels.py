"""Turn a decoded Pillow image of any mode into 8-bit grayscale, deliberately.

Each mode has one rule, and each rule says whether it kept every value:

==============  =============================================================
``L``           as is
``1``           0 and 255 (exact)
``P``, ``PA``   through the palette's colours, then as ``RGB``/``RGBA``
``I;16*``       16-bit values divided by 257 and rounded: 65535 -> 255, the
                inverse of ``v * 257``; exact when every value is a multiple
                of 257 (Pillow's ``convert("L")`` clips instead)
``I``           as ``I;16`` when a value is above 255, else as is
``F``           floats in [0, 1] times 255, else as ``I``; rounded (lossy
                unless every value lands on an integer)
``LA``/``RGBA`` alpha all opaque: the colour channels. One colour everywhere
                (a transparent canvas with ink in the alpha channel): the
                alpha *is* the ink, stored as is (ink bright on dark, as in
                MNIST). Otherwise composited onto black, MNIST's background
                (lossy where alpha is partial)
``RGB`` etc.    R = G = B everywhere: that channel (exact); otherwise luma
                ``L = (299 R + 587 G + 114 B) / 1000`` (lossy)
==============  =============================================================
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

#: The Pillow plugins readers decode with (PPM reads pgm).
PIL_FORMATS = ("PNG", "JPEG", "BMP", "PPM")


def open_image(data: bytes) -> Image.Image:
    """Open encoded image bytes without decoding the pixels yet.

    Pillow warns on stderr past 89 million pixels; the readers check each side
    against the read budget (far smaller by default) right after opening, so the
    warning would only print a second line beside their one-line error.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=PIL_FORMATS)


@dataclass(frozen=True)
class Converted:
    pixels: npt.NDArray[np.uint8]
    conversion: str  # "" for 8-bit grayscale read as is
    lossy: bool = False


def _scaled16(values: npt.NDArray[np.int64], mode: str) -> Converted:
    if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
        clipped = np.clip(values, 0, 65535)
        return Converted(_round_div(clipped, 257), f"{mode}: clipped to 0-65535, /257", True)
    exact = bool((values % 257 == 0).all())
    return Converted(_round_div(values, 257), f"{mode}: 16-bit scaled by 1/257", not exact)


def _round_div(values: npt.NDArray[np.int64], by: int) -> npt.NDArray[np.uint8]:
    return ((values + by // 2) // by).astype(np.uint8)


#: Pixels a colour conversion widens at a time: its wider integers are a strip, never
#: a plane of the image (a 10,000 x 10,000 RGB image once took 2.3 GB through int64).
STRIP = 1 << 16


def _color(rgb: npt.NDArray[np.uint8], mode: str) -> Converted:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # uint8 views
    if np.array_equal(r, g) and np.array_equal(g, b):
        return Converted(np.ascontiguousarray(r), f"{mode}: gray (R=G=B), one channel")
    flat = rgb.reshape(-1, 3)
    luma = np.empty(len(flat), dtype=np.uint8)
    for start in range(0, len(flat), STRIP):
        part = flat[start : start + STRIP].astype(np.uint32)  # 299 * 255 + ... fits 32 bits
        total = part[:, 0] * 299 + part[:, 1] * 587 + part[:, 2] * 114 + 500
        luma[start : start + STRIP] = total // 1000
    return Converted(luma.reshape(rgb.shape[:-1]), f"{mode}: colour to luma", True)


def _with_alpha(color: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8], mode: str) -> Converted:
    if (alpha == 255).all():
        if color.ndim == 2:
            return Converted(color.copy(), f"{mode}: opaque, gray channel")
        return _color(color, f"{mode} opaque")
    flat = color.reshape(-1, color.shape[-1]) if color.ndim == 3 else color.reshape(-1, 1)
    if (flat == flat[0]).all():
        return Converted(alpha.copy(), f"{mode}: ink in alpha (one colour), alpha as ink")
    gray = color if color.ndim == 2 else _color(color, mode).pixels
    # 255 * 255 + 127 fits 16 bits: uint16, not int64, for the product
    composited = (gray.astype(np.uint16) * alpha + 127) // 255
    return Converted(composited.astype(np.uint8), f"{mode}: composited onto black", True)


def to_gray(image: Image.Image) -> Converted:
    """The image as uint8 ``(height, width)``, with the rule applied and whether it lost values."""
    mode = image.mode
    if mode == "L":
        return Converted(np.asarray(image, dtype=np.uint8).copy(), "")
    if mode == "1":
        return Converted(np.asarray(image.convert("L"), dtype=np.uint8).copy(), "1: bilevel 0/255")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return to_gray_as(image.convert("RGBA" if has_alpha else "RGB"), f"{mode} palette")
    if mode.startswith("I;16"):
        return _scaled16(np.asarray(image).astype(np.int64), mode)
    if mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.max(initial=0) > 255 or values.min(initial=0) < 0:
            return _scaled16(values, mode)
        return Converted(values.astype(np.uint8), "I: 32-bit values within 0-255, as is")
    if mode == "F":
        floats = np.asarray(image, dtype=np.float64)
        if floats.min(initial=0) >= 0 and floats.max(initial=0) <= 1:
            scaled = floats * 255
            exact = bool(np.allclose(scaled, np.rint(scaled), atol=1e-3))
            return Converted(np.rint(scaled).astype(np.uint8), "F: [0, 1] times 255", not exact)
        return _scaled16(np.rint(floats).astype(np.int64), mode)
    if mode == "LA":
        data = np.asarray(image, dtype=np.uint8)
        return _with_alpha(data[..., 0], data[..., 1], mode)
    if mode == "RGBA":
        data = np.asarray(image, dtype=np.uint8)
        return _with_alpha(data[..., :3], data[..., 3], mode)
    if mode == "RGB":
        return _color(np.asarray(image, dtype=np.uint8), mode)
    return to_gray_as(image.convert("RGB"), f"{mode} as RGB")


def to_gray_as(image: Image.Image, prefix: str) -> Converted:
    converted = to_gray(image)
    return Converted(converted.pixels, f"{prefix}, {converted.conversion}", converted.lossy)
