"""Where the map puts each image: features of its pixels and two 2-D layouts of them.

* :func:`pooled_pixels`: the pixels averaged over 2 x 2 blocks (or larger, so at most
  :data:`POOLED_SIDE` per side) on the 0-1 scale: 196 numbers for a 28 x 28 digit;
* :func:`fisher_plane`: the quick layout, Fisher's linear discriminant (LDA) of those
  features under the current labels, top two axes (numpy, a fraction of a second for
  20,000 images);
* :func:`tsne_plane`: the good layout, openTSNE's t-SNE of their first
  :data:`TSNE_COMPONENTS` principal components (tens of seconds for 20,000 images, so the
  web view computes it in the background and shows the quick layout meanwhile).

``docs/web.md`` (section "Grid, facets and map") has the measured comparison on the MNIST
test split: 10-NN accuracy of the current labels on the 2-D points is 0.43 for the
principal plane of the near-duplicate embedding, 0.57 for this LDA and 0.95 for this
t-SNE, and only t-SNE leaves planted label flips alone among few other points.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Largest side of the pooled image (larger images are pooled over larger blocks).
POOLED_SIDE = 16
#: Labelled images Fisher's discriminant is fitted on at most (every k-th of the drawn).
FISHER_FIT = 5000
#: Principal components t-SNE sees.
TSNE_COMPONENTS = 50
#: t-SNE settings: a low perplexity and few iterations (125 exaggerated, then 250) keep
#: classes apart at a third of openTSNE's default time (docs/web.md has the figures).
TSNE_PERPLEXITY = 15
TSNE_EARLY_ITERATIONS = 125
TSNE_ITERATIONS = 250
#: Fewer points than this are laid out by the quick layout only.
TSNE_MIN_POINTS = 50


def pooled_pixels(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(N, H, W)`` images averaged over square blocks, flattened, on the 0-1 scale."""
    n, h, w = pixels.shape
    if n == 0 or h == 0 or w == 0:  # nothing drawn: no features
        return np.zeros((n, h * w), np.float32)
    block = max(1, -(-max(h, w) // POOLED_SIDE))  # ceil: at most POOLED_SIDE per side
    rows, cols = max(h // block, 1), max(w // block, 1)
    cropped = pixels[:, : rows * block, : cols * block]
    if cropped.shape[1] < block or cropped.shape[2] < block:  # smaller than one block
        flat: npt.NDArray[np.float32] = cropped.reshape(n, -1).astype(np.float32)
        flat *= np.float32(1 / 255)
        return flat
    total = np.zeros((n, rows, cols), np.uint32)
    for dy in range(block):  # strided sums: faster than a mean over reshaped axes
        for dx in range(block):
            total += cropped[:, dy::block, dx::block]
    pooled: npt.NDArray[np.float32] = total.reshape(n, rows * cols).astype(np.float32)
    pooled *= np.float32(1 / (255 * block * block))
    return pooled


def principal_components(features: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.float32]:
    """``features`` centred and projected on their first ``k`` principal axes."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    top = axes[:, ::-1][:, : min(k, axes.shape[1])]
    reduced: npt.NDArray[np.float32] = (centred @ top).astype(np.float32)
    return reduced


def fisher_plane(
    features: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32] | None:
    """``features`` on the top two axes of Fisher's linear discriminant of ``labels``.

    Fitted on the labelled rows (label >= 0; every k-th, at most :data:`FISHER_FIT`),
    applied to all. The within-class scatter is
    shrunk towards a multiple of the identity (1% of its mean variance) so that constant
    pixels (an always-black border) do not make it singular. None when fewer than two
    classes are labelled (no discriminant to find).
    """
    known = np.flatnonzero(labels >= 0)
    known = known[:: -(-len(known) // FISHER_FIT) or 1]  # every k-th: at most FISHER_FIT
    classes = np.unique(labels[known])
    if len(classes) < 2:
        return None
    x = features[known].astype(np.float64)
    mean = x.mean(axis=0)
    fit = x - mean
    d = x.shape[1]
    index = np.searchsorted(classes, labels[known])
    counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
    member = (index[:, None] == np.arange(len(classes))).astype(np.float64)  # one-hot
    centres = (member.T @ fit) / counts[:, None]  # class means about the overall mean
    between = (centres * counts[:, None]).T @ centres
    within = fit.T @ fit - between  # total scatter = within + between
    within += (0.01 * np.trace(within) / d + 1e-9) * np.eye(d)
    inverse = np.linalg.inv(np.linalg.cholesky(within))  # whiten: L^-1 Sw L^-T = I
    _, axes = np.linalg.eigh(inverse @ between @ inverse.T)
    top = np.zeros((d, 2), np.float32)
    found = inverse.T @ axes[:, ::-1][:, :2]
    top[:, : found.shape[1]] = found
    plane: npt.NDArray[np.float32] = (features.astype(np.float32) - mean.astype(np.float32)) @ top
    return plane


def tsne_available() -> bool:
    """Whether openTSNE (the ``serve`` extra) is installed."""
    try:
        import openTSNE  # noqa: F401
    except ImportError:
        return False
    return True


def tsne_plane(
    features: npt.NDArray[np.floating], *, seed: int = 0, threads: int = 2
) -> npt.NDArray[np.float32]:
    """openTSNE's t-SNE of ``features``' first principal components (PCA initialisation,
    FFT gradients). Needs at least :data:`TSNE_MIN_POINTS` rows and openTSNE."""
    from openTSNE import TSNE

    reduced = principal_components(features, TSNE_COMPONENTS)
    perplexity = min(TSNE_PERPLEXITY, max((len(reduced) - 1) / 3, 1))
    tsne = TSNE(
        perplexity=perplexity, early_exaggeration_iter=TSNE_EARLY_ITERATIONS,
        n_iter=TSNE_ITERATIONS, n_jobs=threads, random_state=seed,
        negative_gradient_method="fft", initialization="pca",
    )  # fmt: skip
    return np.asarray(tsne.fit(reduced), dtype=np.float32)
