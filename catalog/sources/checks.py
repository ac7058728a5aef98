"""Checks that more than one reader makes on the arrays it decoded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.errors import SourceFormatError


def square_images(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Return ``x`` as ``(n, side, side)`` when it is ``(n, side * side)``, else unchanged."""
    side = math.isqrt(x.shape[1]) if x.ndim == 2 else 0
    if x.ndim == 2 and side > 0 and side * side == x.shape[1]:
        return x.reshape(x.shape[0], side, side)
    return x


def check_labels(y: npt.NDArray[Any], images: int, where: str, name: str, of: str) -> None:
    """Check that ``y`` holds one integer label 0-9 per image.

    Parameters
    ----------
    y
        The labels as read.
    images
        How many images they label.
    where
        The start of an error message, naming the file (``"Invalid npz mnist.npz"``).
    name
        What the labels are called in the file (``"y_train"``, ``"train"``).
    of
        What the images are called in the file (``"x_train"``, ``"train images"``).

    Raises
    ------
    SourceFormatError
        When the labels are not integers of shape ``(n,)``, not one per image, or
        one is outside 0-9 (the message shows the first such label and its index).
    """
    if y.ndim != 1 or y.dtype.kind not in "iu":
        msg = (
            f"{where}: expected {name} labels as integers of shape (n,), found {y.dtype} {y.shape}"
        )
        raise SourceFormatError(msg)
    if len(y) != images:
        msg = f"{where}: expected {images} {name} labels (one per image in {of}), found {len(y)}"
        raise SourceFormatError(msg)
    bad = np.flatnonzero((y < 0) | (y > 9))
    if bad.size:
        msg = f"{where}: expected {name} labels 0-9, found {y[bad[0]]} at index {bad[0]}"
        raise SourceFormatError(msg)
