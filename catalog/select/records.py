"""What a selection hands back: image rows and pixel blocks (plain data, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ImageRow:
    """One selected image, without its pixels."""

    id: int
    dataset: str
    split: str
    index: int
    label: int | None  # the current label (the source's with ``original_labels``); None: unlabeled
    sha256: str
    paths: tuple[str, ...] = ()
    original_label: int | None = None  # the source's label
    excluded: bool = False
    tags: tuple[str, ...] = ()
    decision: int | None = None  # the latest decision about the image
    name: str = ""  # the label's class name
    meta: dict[str, str] = field(default_factory=dict)  # per-image metadata


@dataclass(frozen=True)
class PixelBlock:
    """A chunk of selected images with their pixels, in selection order."""

    ids: npt.NDArray[np.int64]
    dataset_ids: npt.NDArray[np.int64]
    splits: list[str]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]  # current (the source's with ``original_labels``)
    sha256: list[str]
    pixels: npt.NDArray[np.uint8]  # (n, height, width)
    original_labels: npt.NDArray[np.int64]
    decisions: npt.NDArray[np.int64]  # the latest decision per image, 0 for none

    def __len__(self) -> int:
        return len(self.ids)
