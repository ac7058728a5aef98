"""What describes an image, for the checks: ink measures and principal components.

* :func:`ink_measures`: per image, the inked fraction, the border's mean and inked pixels,
  the ink mass and centroid, and the blank and inverted masks (odd images, and label errors,
  which leave blank and inverted images to odd images). A few numbers per image, computed
  block by block and joined by :meth:`InkMeasures.concatenate`;
* :func:`fit_pca` and :func:`project`: the first principal components of the pixels, which
  the label-error model sees (:mod:`catalog.audit.label_model`), fitted on a sample and
  applied to any block; :func:`pca_features` does both for images in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Fraction of pixels >= 128 under which an image counts as (nearly) blank.
#: Genuine MNIST's emptiest digit has 1.9% of its pixels inked.
BLANK_INK_FRACTION = 0.005
#: Mean border brightness above which the background is light (inverted).
#: Genuine MNIST's brightest border averages 8.3.
INVERTED_BORDER_MEAN = 128.0

OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
"""The nine shifts of at most one pixel in each direction."""

_LABEL_COMPONENTS = 50  # PCA dimensions the label-error model sees
_CHUNK = 8192  # images per chunk when building features


@dataclass(frozen=True)
class InkMeasures:
    """Per-image ink measures of ``(N, H, W)`` images, all ``(N,)`` arrays."""

    inked: npt.NDArray[np.float32]  # fraction of pixels >= 128
    border_mean: npt.NDArray[np.float32]  # mean of the outermost pixels
    border_inked: npt.NDArray[np.int32]  # outermost pixels >= 128
    mass: npt.NDArray[np.float32]  # sum of pixels / 255
    cy: npt.NDArray[np.float32]  # centroid row (nan for an all-zero image)
    cx: npt.NDArray[np.float32]  # centroid column
    blank: npt.NDArray[np.bool_]  # (nearly) no ink and not inverted
    inverted: npt.NDArray[np.bool_]  # light background

    @classmethod
    def concatenate(cls, parts: Sequence[InkMeasures], shape: tuple[int, int]) -> InkMeasures:
        """Join the measures of consecutive blocks (an empty list gives empty arrays)."""
        if not parts:
            return ink_measures(np.zeros((0, *shape), np.uint8))
        fields = cls.__dataclass_fields__
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})


def ink_measures(pixels: npt.NDArray[np.uint8]) -> InkMeasures:
    """Ink measures of one block of ``(N, H, W)`` images."""
    n, h, w = pixels.shape
    inked = np.count_nonzero((pixels >= 128).reshape(n, h * w), axis=1) / max(h * w, 1)
    border = np.concatenate(
        [pixels[:, 0, :], pixels[:, -1, :], pixels[:, 1:-1, 0], pixels[:, 1:-1, -1]], axis=1
    )
    border_mean = border.mean(axis=1, dtype=np.float64)
    border_inked = np.count_nonzero(border >= 128, axis=1).astype(np.int32)
    rows = pixels.sum(axis=2, dtype=np.int64)  # (n, h)
    cols = pixels.sum(axis=1, dtype=np.int64)  # (n, w)
    total = rows.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (rows @ np.arange(h)) / total
        cx = (cols @ np.arange(w)) / total
    inverted = border_mean > INVERTED_BORDER_MEAN
    blank = (inked < BLANK_INK_FRACTION) & ~inverted
    return InkMeasures(
        inked.astype(np.float32), border_mean.astype(np.float32), border_inked,
        (total / 255.0).astype(np.float32), cy.astype(np.float32), cx.astype(np.float32),
        blank, inverted,
    )  # fmt: skip


def principal_basis(
    cov: npt.NDArray[np.float64], k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """The ``k`` largest eigenvalues of ``cov`` and their eigenvectors as float32 columns.

    Each vector's sign is fixed (largest entry positive) so the result does not depend on
    the eigen solver.
    """
    values, vectors = np.linalg.eigh(cov)
    basis = np.ascontiguousarray(vectors[:, ::-1][:, :k]).astype(np.float32)
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(k)])
    basis *= np.where(signs == 0, 1, signs).astype(np.float32)
    return values[::-1][:k], basis


@dataclass(frozen=True)
class PcaFit:
    """A fitted projection: ``(pixels / 255 - mean) @ basis / scale``."""

    mean: npt.NDArray[np.float32]  # (H * W,)
    basis: npt.NDArray[np.float32]  # (H * W, k)
    scale: float


def fit_pca(pixels: npt.NDArray[np.uint8], components: int = _LABEL_COMPONENTS) -> PcaFit:
    """Fit the first ``components`` principal components of ``pixels`` on the 0-1 scale.

    The scale makes the projected features' mean variance 1 on the fitted images.
    """
    return fit_pca_blocks(
        lambda: (pixels[s : s + _CHUNK] for s in range(0, len(pixels), _CHUNK)), components
    )


def fit_pca_blocks(
    read: Callable[[], Iterable[npt.NDArray[np.uint8]]], components: int = _LABEL_COMPONENTS
) -> PcaFit:
    """:func:`fit_pca` of images read in blocks: ``read()`` yields them, and is called twice
    (the mean, then the covariance about it), so they are never held whole."""
    total: npt.NDArray[np.float64] | None = None
    n = 0
    for block in read():
        flat = block.reshape(len(block), -1)
        part = flat.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
        n += len(block)
    if total is None or not n:
        msg = "cannot fit principal components to no images"
        raise ValueError(msg)
    mean = (total / n / 255).astype(np.float32)
    cov = np.zeros((len(mean), len(mean)), np.float64)
    for block in read():
        flat = block.reshape(len(block), -1)
        for start in range(0, len(flat), _CHUNK):
            centred = flat[start : start + _CHUNK].astype(np.float32) / 255 - mean
            cov += centred.T @ centred
    k = min(components, len(mean), max(n - 1, 1))
    values, basis = principal_basis(cov, k)
    scale = float(np.sqrt(max(values.sum() / max(n, 1) / k, 1e-12)))
    return PcaFit(mean, basis, scale)


def project(fit: PcaFit, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The principal-component features of ``pixels`` under ``fit``, ``(N, k)`` float32."""
    n = len(pixels)
    flat = pixels.reshape(n, -1)
    features = np.empty((n, fit.basis.shape[1]), np.float32)
    for start in range(0, n, _CHUNK):
        block = flat[start : start + _CHUNK].astype(np.float32) / 255 - fit.mean
        features[start : start + _CHUNK] = block @ fit.basis
    features /= np.float32(fit.scale)
    return features


def pca_features(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """First principal components of the pixels on the 0-1 scale, scaled to unit mean variance."""
    return project(fit_pca(pixels), pixels)
