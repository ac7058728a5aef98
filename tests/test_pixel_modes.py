"""Image folders: every Pillow mode becomes 8-bit gray by a stated rule, exactly or loudly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import random_digits
from PIL import Image

from catalog.sources.folder import read_folder
from catalog.sources.pixels import to_gray

DIGIT = random_digits(1, seed=21)[0][0]


def rgba_ink_in_alpha(color: int) -> Image.Image:
    """A transparent-canvas export: one ink colour everywhere, the digit in alpha."""
    data = np.zeros((*DIGIT.shape, 4), dtype=np.uint8)
    data[..., :3] = color
    data[..., 3] = DIGIT
    return Image.fromarray(data, mode="RGBA")


def palette() -> Image.Image:
    return Image.fromarray(DIGIT, mode="L").convert("P")


SAVED_WAYS = {
    "I;16 values x257": Image.fromarray(DIGIT.astype(np.uint16) * 257),
    "RGBA black ink in alpha": rgba_ink_in_alpha(0),
    "RGBA white ink in alpha": rgba_ink_in_alpha(255),
    "palette": palette(),
    "RGB gray": Image.fromarray(np.stack([DIGIT] * 3, axis=-1), mode="RGB"),
    "LA opaque": Image.fromarray(np.stack([DIGIT, np.full_like(DIGIT, 255)], axis=-1), mode="LA"),
    "bilevel": Image.fromarray(np.where(DIGIT > 127, 255, 0).astype(np.uint8), mode="L").convert(
        "1"
    ),
}


@pytest.mark.parametrize("way", sorted(SAVED_WAYS))
def test_each_mode_round_trips_through_png_exactly(tmp_path: Path, way: str) -> None:
    path = tmp_path / "digit.png"
    SAVED_WAYS[way].save(path)
    with Image.open(path) as image:
        image.load()
        converted = to_gray(image)
    expected = np.where(DIGIT > 127, 255, 0) if way == "bilevel" else DIGIT
    assert np.array_equal(converted.pixels, expected), converted.conversion
    assert not converted.lossy


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    converted = to_gray(SAVED_WAYS["I;16 values x257"])
    assert converted.pixels.mean() == pytest.approx(DIGIT.mean())
    assert "1/257" in converted.conversion


def test_colour_image_is_converted_by_luma_and_flagged_lossy() -> None:
    data = np.zeros((*DIGIT.shape, 3), dtype=np.uint8)
    data[..., 0] = DIGIT  # red ink
    converted = to_gray(Image.fromarray(data, mode="RGB"))
    assert converted.lossy
    assert np.array_equal(converted.pixels, (DIGIT.astype(np.int64) * 299 + 500) // 1000)


def test_folder_records_the_conversions_and_warns_when_lossy(tmp_path: Path) -> None:
    folder = tmp_path / "pngs" / "train"
    folder.mkdir(parents=True)
    SAVED_WAYS["I;16 values x257"].save(folder / "000000_3.png")
    SAVED_WAYS["RGBA black ink in alpha"].save(folder / "000001_3.png")
    Image.fromarray(DIGIT, mode="L").save(folder / "000002_3.png")
    decoded = read_folder(tmp_path / "pngs")
    pixels = np.concatenate([batch.pixels for batch in decoded.batches])
    assert all(np.array_equal(image, DIGIT) for image in pixels)
    note = decoded.files[0].note or ""
    assert "1 x I;16: 16-bit scaled by 1/257" in note
    assert "alpha as ink" in note
    assert decoded.warnings == []

    red = np.zeros((*DIGIT.shape, 3), dtype=np.uint8)
    red[..., 0] = DIGIT
    Image.fromarray(red, mode="RGB").save(folder / "000003_3.png")
    decoded = read_folder(tmp_path / "pngs")
    for _ in decoded.batches:
        pass
    assert len(decoded.warnings) == 1
    assert "000003_3.png" in decoded.warnings[0]
    assert "lost information" in decoded.warnings[0]


def test_unlabeled_folder_and_labels_past_nine(tmp_path: Path) -> None:
    for folder, name in (("train/unlabeled", "000000.png"), ("train/25", "000001.png")):
        (tmp_path / folder).mkdir(parents=True)
        Image.fromarray(DIGIT, mode="L").save(tmp_path / folder / name)
    decoded = read_folder(tmp_path)
    labels = np.concatenate([batch.labels for batch in decoded.batches])
    assert sorted(labels.tolist()) == [-1, 25]
