"""Write a folder the way the old pyplot recipe did, without matplotlib.

The recipe saved each digit with ``pyplot.imsave(f"{split}/{i:06d}_{label}.jpg",
image, cmap="gray")``: matplotlib normalises each image to its own min/max,
looks it up in the 256-entry gray colormap (``int(v * 256)``, clipped to 255),
and Pillow writes the RGB result as a JPEG at its default quality, 75.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

Pixels = npt.NDArray[np.uint8]
#: Real MNIST by split: (pixels, labels).
Arrays = dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]


def stretch(image: Pixels) -> Pixels:
    """``pyplot.imsave(..., cmap="gray")``'s per-image min/max stretch to 0-255."""
    low, high = int(image.min()), int(image.max())
    if high == low:
        return np.zeros_like(image)
    v = (image.astype(np.float64) - low) / (high - low)
    return np.clip((v * 256).astype(np.int64), 0, 255).astype(np.uint8)


def write_old_recipe_folder(
    root: Path,
    splits: Mapping[str, tuple[Pixels, npt.NDArray[np.integer]]],
    indices: Mapping[str, Sequence[int]] | None = None,
    quality: int = 75,
) -> Path:
    """Write ``root/<split>/<index:06d>_<label>.jpg`` as RGB JPEGs of stretched images."""
    for split, (pixels, labels) in splits.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        numbers = list(indices[split]) if indices else range(len(pixels))
        for image, label, index in zip(pixels, labels, numbers, strict=True):
            gray = stretch(np.asarray(image, dtype=np.uint8))
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
            Image.fromarray(rgb, mode="RGB").save(
                folder / f"{index:06d}_{int(label)}.jpg", quality=quality
            )
    return root


def letter(char: str = "A", size: int = 28) -> Pixels:
    """A letter drawn with strokes, as EMNIST-style foreign data."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    if char == "A":
        draw.line([(6, 23), (14, 4), (22, 23)], fill=255, width=3)
        draw.line([(9, 15), (19, 15)], fill=255, width=3)
    else:
        draw.ellipse([(7, 5), (21, 23)], outline=255, width=3)
        draw.line([(14, 14), (22, 23)], fill=255, width=3)
    return np.asarray(image, dtype=np.uint8)
