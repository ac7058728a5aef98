"""Pictures of digits: text renderings for the terminal and PNG contact sheets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.orm import Session

from catalog.facts.label_sets import LabelSet, label_set
from catalog.select.reads import iter_pixel_blocks
from catalog.selection import Selection

#: Ink at or above this value is drawn in the text rendering.
INK = 128
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def render_text(pixels: npt.NDArray[np.uint8]) -> str:
    """Draw a digit with Unicode half blocks: one character holds two pixel rows.

    >>> print(render_text(np.array([[0, 255], [255, 255]], dtype=np.uint8)))
    ▄█
    """
    ink = pixels >= INK
    if ink.shape[0] % 2:
        ink = np.vstack([ink, np.zeros((1, ink.shape[1]), dtype=bool)])
    lines = [
        "".join(
            _HALF_BLOCKS[(bool(top), bool(bottom))]
            for top, bottom in zip(upper, lower, strict=True)
        )
        for upper, lower in zip(ink[0::2], ink[1::2], strict=True)
    ]
    return "\n".join(line.rstrip() for line in lines)


def enlarge(pixels: npt.NDArray[np.uint8], scale: int) -> npt.NDArray[np.uint8]:
    """Repeat each pixel ``scale`` times in both directions (nearest neighbour)."""
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def save_png(pixels: npt.NDArray[np.uint8], path: Path, scale: int = 1) -> Path:
    """Write a grayscale PNG of ``pixels``, enlarged ``scale`` times."""
    Image.fromarray(enlarge(pixels, scale), mode="L").save(path, format="PNG")
    return path


def contact_sheet(
    pixels: npt.NDArray[np.uint8],
    captions: Sequence[str],
    *,
    cols: int = 20,
    scale: int = 2,
    title: str | None = None,
) -> Image.Image:
    """A grid of digits, each with its caption underneath, on a white page.

    Digits are drawn as dark ink on light paper (inverted from MNIST's storage)
    so the sheet reads like a page of handwriting. Captions are set at a size that
    grows with ``scale`` (12 px at 1x, 16 px at 3x), each cell is as wide as its
    widest caption, and the page is at least as wide as its title.
    """
    n = len(pixels)
    height, width = (pixels.shape[1], pixels.shape[2]) if n else (28, 28)
    font = ImageFont.load_default(size=10 + 2 * scale)
    title_font = ImageFont.load_default(size=16)
    shown = [captions[i] if i < len(captions) else "" for i in range(n)]
    widest = max((font.getlength(text) for text in shown), default=0.0)
    cell_w = int(max(width * scale, widest)) + 12
    top, bottom = font.getbbox("Ag0")[1::2]
    caption_h = int(bottom - top) + 8
    cell_h = height * scale + caption_h + 8
    cols = max(1, min(cols, n or 1))
    rows = max(1, -(-n // cols))
    title_h = 28 if title else 0
    title_w = int(title_font.getlength(title)) + 12 if title else 0
    sheet = Image.new("L", (max(cols * cell_w, title_w), rows * cell_h + title_h), color=255)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((6, 5), title, fill=0, font=title_font)
    for i in range(n):
        row, col = divmod(i, cols)
        x0 = col * cell_w + (cell_w - width * scale) // 2
        y0 = title_h + row * cell_h + 4
        digit = Image.fromarray(255 - enlarge(pixels[i], scale), mode="L")
        sheet.paste(digit, (x0, y0))
        draw.rectangle((x0 - 1, y0 - 1, x0 + width * scale, y0 + height * scale), outline=200)
        text_x = col * cell_w + (cell_w - font.getlength(shown[i])) / 2
        draw.text((text_x, y0 + height * scale + 3), shown[i], fill=0, font=font)
    return sheet


def selection_sheet(
    session: Session, selection: Selection, *, cols: int = 20, scale: int = 2
) -> tuple[Image.Image, int]:
    """A contact sheet of the selected digits captioned ``split:index  label``."""
    pixels: list[npt.NDArray[np.uint8]] = []
    captions: list[str] = []
    sets: dict[int, LabelSet] = {}
    for block in iter_pixel_blocks(session, selection):
        pixels.append(block.pixels)
        for ds in set(block.dataset_ids.tolist()) - set(sets):
            sets[ds] = label_set(session, ds)
        captions += [
            f"{i} [{_caption(sets[ds], label)}]"
            for i, label, ds in zip(
                block.indices.tolist(),
                block.labels.tolist(),
                block.dataset_ids.tolist(),
                strict=True,
            )
        ]
    stacked = np.concatenate(pixels) if pixels else np.zeros((0, 28, 28), dtype=np.uint8)
    title = _describe(selection)
    return contact_sheet(stacked, captions, cols=cols, scale=scale, title=title), len(stacked)


def _caption(labels: LabelSet, label: int) -> str:
    """``3``, ``1 Trouser`` or ``-`` (no label): the number, and the class name when
    it says more (a non-ASCII name is left out: the caption font may lack its glyphs)."""
    if label < 0:
        return "-"
    name = labels.name(label)
    if name == str(label) or not name.isascii():
        return str(label)
    return f"{label} {name}"


def _describe(selection: Selection) -> str:
    parts = [selection.dataset or ""]
    if selection.splits:
        parts.append("split " + ",".join(selection.splits))
    if selection.labels:
        parts.append("label " + ",".join(map(str, selection.labels)))
    if selection.sample is not None:
        parts.append(f"sample {selection.sample} seed {selection.seed}")
    if selection.per_label is not None:
        parts.append(f"{selection.per_label} per label, seed {selection.seed}")
    if selection.unlabeled:
        parts.append("unlabeled")
    if selection.where:
        parts.append(" ".join(f"{k}={v}" for k, v in selection.where))
    if selection.per_group is not None:
        parts.append(f"{selection.per_group} per {selection.group_by}, seed {selection.seed}")
    return "  ".join(p for p in parts if p) or "all images"
