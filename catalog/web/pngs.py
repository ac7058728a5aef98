"""Digits as PNG bytes: one thumbnail, or one sprite sheet for a page of the grid.

Digits are drawn dark on light (inverted from MNIST's storage), as the contact
sheets draw them; the browser enlarges them with ``image-rendering: pixelated``,
so a 28 x 28 PNG of a few hundred bytes serves every size.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

#: Digits per row of a sprite sheet.
SPRITE_COLUMNS = 25


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A grayscale PNG of one digit, dark ink on light paper."""
    buffer = io.BytesIO()
    Image.fromarray(255 - np.ascontiguousarray(pixels), mode="L").save(
        buffer, format="PNG", compress_level=6
    )
    return buffer.getvalue()


def sprite_bytes(pixels: npt.NDArray[np.uint8], columns: int = SPRITE_COLUMNS) -> bytes:
    """``pixels`` ``(n, h, w)`` tiled row by row, ``columns`` to a row, as one PNG.

    Digit ``i`` is at column ``i % columns``, row ``i // columns``.
    """
    n, height, width = pixels.shape if len(pixels) else (0, 28, 28)
    rows = max(1, -(-n // columns))
    sheet = np.full((rows * columns, height, width), 255, dtype=np.uint8)
    sheet[:n] = 255 - pixels
    tiled = sheet.reshape(rows, columns, height, width).transpose(0, 2, 1, 3)
    buffer = io.BytesIO()
    picture = tiled.reshape(rows * height, columns * width)
    Image.fromarray(np.ascontiguousarray(picture), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
