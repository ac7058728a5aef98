"""What describes an image, for the checks: ink measures and low-dimensional features.

Three descriptions, each shared by the checks that need it:

* :func:`ink_measures`: inked fraction, border pixels, and the blank and inverted masks
  (odd images, and label errors, which leave blank and inverted images to odd images);
* :func:`candidate_features`: PCA of despeckled low-frequency Fourier magnitudes, in which
  near-duplicate candidates are searched (:mod:`catalog.audit.neighbours`);
* :func:`pca_features`: the first principal components of the pixels, which the label-error
  model sees (:mod:`catalog.audit.label_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

_FREQUENCIES = 8  # low frequencies kept per axis in the Fourier magnitude feature
_CANDIDATE_COMPONENTS = 40  # PCA dimensions of the near-duplicate candidate feature
_LABEL_COMPONENTS = 50  # PCA dimensions the label-error model sees
_CHUNK = 8192  # images per chunk when building features


@dataclass(frozen=True)
class InkMeasures:
    """Per-image ink measures of ``(N, H, W)`` images."""

    inked: npt.NDArray[Any]  # (N,) fraction of pixels >= 128
    border: npt.NDArray[Any]  # (N, 2H + 2W - 4) float32 outermost pixels
    blank: npt.NDArray[np.bool_]  # (N,) (nearly) no ink and not inverted
    inverted: npt.NDArray[np.bool_]  # (N,) light background


def ink_measures(pixels: npt.NDArray[np.uint8]) -> InkMeasures:
    """Inked fraction, border pixels, and the blank and inverted masks."""
    inked = (pixels >= 128).mean(axis=(1, 2))
    border = np.concatenate(
        [pixels[:, 0, :], pixels[:, -1, :], pixels[:, 1:-1, 0], pixels[:, 1:-1, -1]], axis=1
    ).astype(np.float32)
    inverted = border.mean(axis=1) > INVERTED_BORDER_MEAN
    blank = (inked < BLANK_INK_FRACTION) & ~inverted
    return InkMeasures(inked, border, blank, inverted)


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


def despeckle(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Clamp every pixel to the range of its 8 neighbours (zero outside the frame)."""
    h, w = pixels.shape[1:]
    padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1)))
    low = np.full_like(pixels, 255)
    high = np.zeros_like(pixels)
    for dy, dx in OFFSETS:
        if dy == 0 and dx == 0:
            continue
        neighbour = padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        np.minimum(low, neighbour, out=low)
        np.maximum(high, neighbour, out=high)
    return np.clip(pixels, low, high)


def fourier_magnitudes(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Low-frequency magnitudes of the 2-D Fourier transform of despeckled images."""
    h, w = pixels.shape[1:]
    fy = min(_FREQUENCIES, (h + 1) // 2)
    fx = min(_FREQUENCIES, w // 2 + 1)
    out: list[npt.NDArray[np.float32]] = []
    for start in range(0, len(pixels), _CHUNK):
        chunk = despeckle(pixels[start : start + _CHUNK]).astype(np.float32)
        spectrum = np.abs(np.fft.rfft2(chunk))[:, :, :fx]
        rows = np.concatenate([spectrum[:, :fy], spectrum[:, h - fy + 1 :]], axis=1)
        out.append(rows.reshape(len(chunk), -1).astype(np.float32))
    return np.concatenate(out)


def candidate_features(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """PCA projection of the Fourier magnitudes (an orthogonal projection never adds distance)."""
    features = fourier_magnitudes(pixels)
    mean = features.mean(axis=0, dtype=np.float64).astype(np.float32)
    features -= mean
    cov = (features.T @ features).astype(np.float64)
    _, basis = principal_basis(cov, min(_CANDIDATE_COMPONENTS, features.shape[1]))
    return np.ascontiguousarray(features @ basis)


def pca_features(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """First principal components of the pixels on the 0-1 scale, scaled to unit mean variance."""
    n = len(pixels)
    flat = pixels.reshape(n, -1)
    mean = flat.mean(axis=0, dtype=np.float64).astype(np.float32) / 255
    cov = np.zeros((flat.shape[1], flat.shape[1]), np.float64)
    for start in range(0, n, _CHUNK):
        block = flat[start : start + _CHUNK].astype(np.float32) / 255 - mean
        cov += block.T @ block
    k = min(_LABEL_COMPONENTS, flat.shape[1], max(n - 1, 1))
    values, basis = principal_basis(cov, k)
    features = np.empty((n, k), np.float32)
    for start in range(0, n, _CHUNK):
        block = flat[start : start + _CHUNK].astype(np.float32) / 255 - mean
        features[start : start + _CHUNK] = block @ basis
    scale = float(np.sqrt(max(values.sum() / max(n, 1) / k, 1e-12)))
    features /= np.float32(scale)
    return features
