"""What the label-error scorers see: deskewed or plain pixels, as principal components or raw.

* :func:`deskew`: each digit sheared upright and centred by its second moments (the
  classic MNIST preprocessing, LeCun et al. and Ciresan et al.): ``alpha = cov(y, x) /
  var(y)`` of the ink, output pixel ``(r, c)`` taken from ``(r + cy - oy, c + alpha (r - oy)
  + cx - ox)`` by bilinear interpolation, done as two one-dimensional passes in numpy
  blocks. Slant is the largest variation among writers that says nothing of the digit.
* :func:`shifted`: a one-pixel shift, filled with 0, for training on shifted copies.
* :class:`FeatureFit`: how a block of pixels becomes features for a scorer: deskewed or
  not, then projected on principal components fitted on the sample (or the 0-1 pixels
  themselves, for the convolutional network).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.audit.features import PcaFit, fit_pca_blocks, project

__all__ = ["SHIFTS", "FeatureFit", "deskew", "fit_features", "shifted"]

SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""The one-pixel shifts a scorer with shift augmentation also trains on."""
_BLOCK = 1024  # images deskewed at a time


def deskew(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Shear each image upright and move its ink's centroid to the centre (see the module).

    >>> image = np.zeros((1, 28, 28), np.uint8)
    >>> for r in range(6, 22):  # a "1" leaning right: one column per two rows
    ...     image[0, r, 10 + (21 - r) // 2 : 12 + (21 - r) // 2] = 255
    >>> cols = deskew(image)[0].astype(bool).any(axis=0).nonzero()[0]
    >>> int(cols.max() - cols.min()) <= 3  # upright: about two columns wide
    True
    """
    if len(pixels) > _BLOCK:
        return np.concatenate(
            [deskew(pixels[s : s + _BLOCK]) for s in range(0, len(pixels), _BLOCK)]
        )
    n, h, w = pixels.shape
    img = pixels.astype(np.float32)
    row_mass = img.sum(axis=2)  # (n, h)
    col_mass = img.sum(axis=1)  # (n, w)
    total = np.maximum(row_mass.sum(axis=1), 1e-6)
    rows = np.arange(h, dtype=np.float32)
    cols = np.arange(w, dtype=np.float32)
    cy = row_mass @ rows / total
    cx = col_mass @ cols / total
    var_y = row_mass @ (rows * rows) / total - cy * cy
    cov = img.reshape(n, -1) @ np.outer(rows, cols).ravel() / total - cy * cx
    alpha = np.where(var_y > 1e-3, cov / np.maximum(var_y, 1e-3), 0).astype(np.float32)
    oy, ox = (h - 1) / 2, (w - 1) / 2
    # Vertical pass: every row r of the output from row r + cy - oy of the input.
    upright = _resample(img, (rows[None, :] + (cy - oy)[:, None])[:, :, None], axis=1)
    # Horizontal pass: column c of row r from column c + alpha (r - oy) + cx - ox.
    shift = alpha[:, None] * (rows - oy)[None, :] + (cx - ox)[:, None]  # (n, h)
    out = _resample(upright, cols[None, None, :] + shift[:, :, None], axis=2)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resample(
    img: npt.NDArray[np.float32], where: npt.NDArray[np.float32], axis: int
) -> npt.NDArray[np.float32]:
    """Linear interpolation of ``img`` along ``axis`` at positions ``where`` (0 outside)."""
    size = img.shape[axis]
    pad = [(0, 0)] * 3
    pad[axis] = (1, 1)
    padded = np.pad(img, pad)  # a zero on each side: positions -1 and size
    where = np.broadcast_to(np.clip(where, -1, size), img.shape)
    low = np.floor(where)
    frac = (where - low).astype(np.float32)
    lo = low.astype(np.intp) + 1
    hi = np.minimum(lo + 1, size + 1)
    a = np.take_along_axis(padded, lo, axis=axis)
    b = np.take_along_axis(padded, hi, axis=axis)
    return a + frac * (b - a)


def shifted(pixels: npt.NDArray[np.uint8], dy: int, dx: int) -> npt.NDArray[np.uint8]:
    """Images moved ``dy`` rows down and ``dx`` columns right, filled with 0."""
    out = np.zeros_like(pixels)
    h, w = pixels.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = pixels[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@dataclass(frozen=True)
class FeatureFit:
    """How pixels become a scorer's features: deskewed or not, then projected (or raw)."""

    deskew: bool
    pca: PcaFit | None  # None: the 0-1 pixels themselves, flattened

    def transform(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """``(m, D)`` float32 features of ``(m, H, W)`` images."""
        return self._features(deskew(pixels) if self.deskew else pixels)

    def variants(self, pixels: npt.NDArray[np.uint8], shifts: bool) -> npt.NDArray[np.float32]:
        """``(V, m, D)`` features of the images and, with ``shifts``, of their :data:`SHIFTS`."""
        ready = deskew(pixels) if self.deskew else pixels
        moved = [shifted(ready, dy, dx) for dy, dx in SHIFTS] if shifts else []
        return np.stack([self._features(p) for p in (ready, *moved)])

    def _features(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if self.pca is None:
            return pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(255)
        return project(self.pca, pixels)


def fit_features(
    read: Callable[[], Iterable[npt.NDArray[np.uint8]]], *, deskewed: bool, components: int
) -> FeatureFit:
    """Fit the features on the images ``read()`` yields in blocks (``components == 0``: raw)."""
    if not components:
        return FeatureFit(deskewed, None)
    prepare = deskew if deskewed else (lambda block: block)
    pca = fit_pca_blocks(lambda: (prepare(block) for block in read()), components)
    return FeatureFit(deskewed, pca)
