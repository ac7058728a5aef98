"""The map's layouts (catalog.similarity.layout): classes apart in 2-D, where the first
map (PCA of the near-duplicate embedding) drew one mush, and planted label flips among
other labels. On synthetic classes (no data needed) and on 2,000 real MNIST test digits."""

from __future__ import annotations

import gzip

import numpy as np
import numpy.typing as npt
import pytest
from conftest import MNIST_DIR

from catalog.similarity.embed import embed_pixels
from catalog.similarity.layout import fisher_plane, pooled_pixels, tsne_available, tsne_plane
from catalog.similarity.projection import principal_plane

K = 10


def neighbour_labels(
    xy: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The labels of each point's ``K`` nearest other points in 2-D (brute force)."""
    xy = np.asarray(xy, np.float64)
    squared = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(squared, np.inf)
    found: npt.NDArray[np.int64] = labels[np.argsort(squared, axis=1)[:, :K]]
    return found


def knn_accuracy(xy: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]) -> float:
    """How often a point's 10 nearest 2-D neighbours mostly carry its label."""
    near = neighbour_labels(xy, labels)
    votes = np.stack([(near == c).sum(axis=1) for c in range(10)], axis=1)
    return float((votes.argmax(axis=1) == labels).mean())


def standing_out(
    xy: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether most of each point's 10 nearest 2-D neighbours carry another label."""
    found: npt.NDArray[np.bool_] = (neighbour_labels(xy, labels) == labels[:, None]).sum(
        axis=1
    ) < K / 2
    return found


def test_fisher_plane_separates_classes_that_pca_mixes() -> None:
    # Ten classes apart along 8 axes, and a large spread along 2 others that says nothing
    # of the class: the principal plane is that spread; the discriminant finds the classes.
    rng = np.random.Generator(np.random.PCG64(3))
    labels = np.repeat(np.arange(10), 60).astype(np.int64)
    centres = rng.normal(0, 1.0, (10, 10))
    centres[:, :2] = 0
    points = centres[labels] + rng.normal(0, 0.25, (600, 10))
    points[:, :2] += rng.normal(0, 6.0, (600, 2))
    pca = principal_plane(points.astype(np.float32))[0]
    fisher = fisher_plane(points, labels)
    assert fisher is not None
    assert knn_accuracy(pca, labels) < 0.4
    assert knn_accuracy(fisher, labels) > 0.7


def test_fisher_plane_needs_two_labelled_classes() -> None:
    points = np.random.Generator(np.random.PCG64(1)).normal(size=(20, 4))
    assert fisher_plane(points, np.zeros(20, np.int64)) is None
    assert fisher_plane(points, np.full(20, -1, np.int64)) is None
    mixed = np.array([0, 1] * 5 + [-1] * 10, np.int64)  # unlabelled rows are placed too
    plane = fisher_plane(points, mixed)
    assert plane is not None
    assert plane.shape == (20, 2)


def test_pooled_pixels_average_blocks_on_the_unit_scale() -> None:
    pixels = np.zeros((2, 28, 28), np.uint8)
    pixels[0, :2, :2] = 255
    pixels[1, 27, 27] = 255
    pooled = pooled_pixels(pixels)
    assert pooled.shape == (2, 196)
    assert pooled[0, 0] == 1.0
    assert pooled[1, 195] == 0.25
    assert pooled_pixels(np.zeros((3, 64, 48), np.uint8)).shape == (3, 16 * 12)
    assert pooled_pixels(np.full((1, 3, 3), 255, np.uint8)).tolist() == [[1.0] * 9]  # kept whole


def _mnist_test(n: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images.is_file():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    with gzip.open(images) as read:
        pixels = np.frombuffer(read.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as read:
        labels = np.frombuffer(read.read(), np.uint8, offset=8)
    return pixels[:n], labels[:n].astype(np.int64)


@pytest.mark.skipif(not tsne_available(), reason="openTSNE (the serve extra) is not installed")
def test_on_mnist_tsne_separates_digits_and_flips_stand_out() -> None:
    pixels, labels = _mnist_test(2000)
    rng = np.random.Generator(np.random.PCG64(0))
    flip = rng.choice(len(labels), 20, replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, 10, 20)) % 10
    old = principal_plane(embed_pixels(pixels))[0]
    quick = fisher_plane(pooled_pixels(pixels), labels)
    assert quick is not None
    tsne = tsne_plane(pooled_pixels(pixels))
    assert knn_accuracy(old, labels) < 0.5  # the first map: one mush
    assert knn_accuracy(quick, labels) > knn_accuracy(old, labels) + 0.05
    assert knn_accuracy(tsne, labels) > 0.85
    out = standing_out(tsne, labels)
    assert out[flip].mean() >= 0.8  # the flips stand out ...
    assert out.mean() < 0.15  # ... and few others do
    assert standing_out(old, labels).mean() > 0.5  # in the mush, everything does
