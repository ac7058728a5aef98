"""Near-duplicate search: planted copies are found, distinct images are not."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from catalog.audit.pair_distance import (
    DEFAULT_THRESHOLD,
    NearDuplicatePair,
    find_near_duplicates,
    near_duplicate_distance,
)

Pixels = npt.NDArray[np.uint8]


def synthetic_digits(
    n: int, seed: int = 0, classes: int = 10
) -> tuple[Pixels, npt.NDArray[np.int64]]:
    """Draw 28 x 28 stroke digits: each class is 3 segments, jittered per image."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).uniform(6, 22, (classes, 3, 4))
    labels = rng.integers(0, classes, n)
    ends = prototypes[labels] + rng.normal(0, 1.2, (n, 3, 4))
    width = rng.uniform(1.0, 2.0, (n, 1, 1))
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    dist = np.full((n, 28, 28), np.inf)
    for s in range(3):
        y0, x0, y1, x1 = (ends[:, s, i, None, None] for i in range(4))
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx + 1e-9), 0, 1)
        dist = np.minimum(dist, np.hypot(yy - y0 - t * dy, xx - x0 - t * dx))
    pixels = np.clip((width + 0.5 - dist) * 255, 0, 255).astype(np.uint8)
    return pixels, labels.astype(np.int64)


def shifted(image: Pixels, dy: int, dx: int) -> Pixels:
    return np.roll(image, (dy, dx), axis=(0, 1))


def jpeg(image: Pixels, quality: int = 75) -> Pixels:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def repainted(image: Pixels, count: int, seed: int) -> Pixels:
    rng = np.random.default_rng(seed)
    out = image.copy()
    out.flat[rng.choice(out.size, count, replace=False)] = rng.integers(0, 256, count)
    return out


def planted(base: Pixels) -> tuple[Pixels, list[tuple[int, int]]]:
    """Append modified copies of the first images of ``base``; return (source, copy) pairs."""
    copies = [
        shifted(base[0], -1, 0),
        shifted(base[1], 1, 0),
        shifted(base[2], 0, -1),
        shifted(base[3], 0, 1),
        shifted(base[4], 1, 1),
        jpeg(base[5], 75),
        jpeg(base[6], 95),
        repainted(base[7], 3, 1),
        repainted(base[8], 5, 2),
        repainted(base[9], 10, 3),
    ]
    n = len(base)
    return np.concatenate([base, np.stack(copies)]), [(k, n + k) for k in range(len(copies))]


def test_planted_copies_are_found_and_nothing_else() -> None:
    base, _ = synthetic_digits(300)
    pixels, expected = planted(base)
    found = find_near_duplicates(pixels)
    assert sorted((p.first, p.second) for p in found) == expected


def test_pairs_sorted_and_within_threshold() -> None:
    base, _ = synthetic_digits(100, seed=1)
    pixels, _ = planted(base)
    found = find_near_duplicates(pixels)
    distances = [p.distance for p in found]
    assert distances == sorted(distances)
    assert all(p.first < p.second for p in found)
    assert all(0 <= d <= DEFAULT_THRESHOLD for d in distances)


def test_byte_identical_pairs_are_excluded() -> None:
    base, _ = synthetic_digits(20, seed=2)
    pixels = np.concatenate([base, base[:1], shifted(base[0], 1, 0)[None]])
    found = find_near_duplicates(pixels)
    assert [(p.first, p.second, p.distance) for p in found] == [(0, 21, 0.0), (20, 21, 0.0)]


def test_distance_of_planted_copies_and_distinct_images() -> None:
    base, _ = synthetic_digits(40, seed=3)
    pixels, expected = planted(base)
    first = pixels[[a for a, _ in expected]]
    second = pixels[[b for _, b in expected]]
    assert near_duplicate_distance(first, second).max() < DEFAULT_THRESHOLD / 2
    distinct = near_duplicate_distance(base[:20], base[20:])
    assert distinct.min() > 2 * DEFAULT_THRESHOLD


def test_progress_counts_every_image() -> None:
    base, _ = synthetic_digits(50, seed=4)
    done: list[int] = []
    find_near_duplicates(base, progress=done.append)
    assert sum(done) == 50


def test_tiny_inputs() -> None:
    assert find_near_duplicates(np.zeros((0, 28, 28), np.uint8)) == []
    assert find_near_duplicates(np.zeros((1, 28, 28), np.uint8)) == []


def test_bad_shape_raises() -> None:
    msg = "pixels must have shape (N, H, W) with H, W >= 3, got (4, 784)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        find_near_duplicates(np.zeros((4, 784), np.uint8))


def test_pair_is_frozen() -> None:
    pair = NearDuplicatePair(1, 2, 3.0)
    with pytest.raises(AttributeError):
        pair.first = 0  # type: ignore[misc]


@pytest.mark.mnist
def test_real_mnist_test_set(mnist_dir: Path) -> None:
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    assert find_near_duplicates(images) == []
    pixels, expected = planted(images)
    found = find_near_duplicates(pixels)
    assert sorted((p.first, p.second) for p in found) == expected
