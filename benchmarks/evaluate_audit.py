"""Measure the near-duplicate and label-error audits on the real MNIST files.

Run ``python benchmarks/evaluate_audit.py [MNIST_DIR]``; MNIST_DIR defaults to
``../shared/data/mnist`` beside the repository. Prints Markdown tables (pasted into
``docs/audit-methods.md``). Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.audit.label_model import METHODS, rank_label_errors
from catalog.audit.pair_distance import (
    DEFAULT_THRESHOLD,
    find_near_duplicates,
    near_duplicate_distance,
)

Images = npt.NDArray[np.uint8]
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
PLANTED_PER_KIND = 200
NATURAL_RADIUS = 0.35  # embedding distance: generous beside the audit's 0.15 and 0.25


def load_mnist(folder: Path) -> tuple[Images, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Return the 70,000 MNIST images (train then test), labels and test mask."""

    def read(name: str, offset: int) -> npt.NDArray[np.uint8]:
        with gzip.open(folder / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    pixels = np.concatenate(
        [
            read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
        ]
    )
    labels = np.concatenate(
        [read("train-labels-idx1-ubyte.gz", 8), read("t10k-labels-idx1-ubyte.gz", 8)]
    ).astype(np.int64)
    is_test = np.arange(len(labels)) >= 60_000
    return pixels, labels, is_test


def shift(image: Images, dy: int, dx: int) -> Images:
    """Shift an image by (dy, dx) pixels, filling with 0 (ink leaving the frame is lost)."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def jpeg(image: Images, quality: int) -> Images:
    """Re-encode an image as JPEG at ``quality`` with Pillow and decode it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def repaint(image: Images, count: int, rng: np.random.Generator) -> Images:
    """Set ``count`` random pixels to random values."""
    out = image.copy()
    where = rng.choice(out.size, count, replace=False)
    out.flat[where] = rng.integers(0, 256, count)
    return out


def modifications(rng: np.random.Generator) -> dict[str, Callable[[Images], Images]]:
    """The planted copy kinds, by name."""
    kinds: dict[str, Callable[[Images], Images]] = {}
    for name, (dy, dx) in {
        "shift up": (-1, 0),
        "shift down": (1, 0),
        "shift left": (0, -1),
        "shift right": (0, 1),
        "shift up-left": (-1, -1),
        "shift up-right": (-1, 1),
        "shift down-left": (1, -1),
        "shift down-right": (1, 1),
    }.items():
        kinds[name] = lambda a, dy=dy, dx=dx: shift(a, dy, dx)
    kinds["JPEG q=95"] = lambda a: jpeg(a, 95)
    kinds["JPEG q=75"] = lambda a: jpeg(a, 75)
    for count in (3, 5, 10):
        kinds[f"{count} random pixels"] = lambda a, c=count: repaint(a, c, rng)
    return kinds


def evaluate_near_duplicates(pixels: Images, labels: npt.NDArray[np.int64]) -> None:
    """Print the natural and planted distance tables and the runtime."""
    n = len(pixels)
    print("## Near duplicates on the 70,000 MNIST images (train + test)\n")

    start = time.perf_counter()
    found = find_near_duplicates(pixels)
    runtime = time.perf_counter() - start
    tracemalloc.start()
    find_near_duplicates(pixels[:20_000])
    peak_20k = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    # Natural pairs: every pair within a generous candidate radius and a distance of 100.
    natural = find_near_duplicates(pixels, threshold=100.0, candidate_radius=NATURAL_RADIUS)
    first = np.array([p.first for p in natural], np.int64)
    second = np.array([p.second for p in natural], np.int64)
    dist = np.array([p.distance for p in natural])
    order = np.arange(len(natural))
    print(
        f"Natural pairs: all {len(first):,} pairs at distance <= 100 among the candidates "
        f"within embedding distance {NATURAL_RADIUS:g} (15 nearest).\n"
    )
    ranks = [r for r in (1, 2, 5, 10, 20, 40, 100, 1000) if r <= len(order)]
    print("| closest natural pairs | " + " | ".join(f"#{r}" for r in ranks) + " |")
    print("|---" * (len(ranks) + 1) + "|")
    values = [f"{dist[order[r - 1]]:.1f}" for r in ranks]
    print("| distance | " + " | ".join(values) + " |\n")
    print("| natural pair | labels | distance |")
    print("|---|---|---|")
    for k in order[:10].tolist():
        a, b = int(first[k]), int(second[k])
        name_a = f"train {a}" if a < 60_000 else f"test {a - 60_000}"
        name_b = f"train {b}" if b < 60_000 else f"test {b - 60_000}"
        print(f"| {name_a} / {name_b} | {labels[a]} / {labels[b]} | {dist[k]:.1f} |")
    print()

    # Planted copies, found by a full search over the 70,000 images plus the copies.
    rng = np.random.default_rng(2024)
    kinds = modifications(rng)
    sources = rng.choice(n, (len(kinds), PLANTED_PER_KIND), replace=False)
    copies = np.stack(
        [f(pixels[s]) for f, row in zip(kinds.values(), sources, strict=True) for s in row]
    )
    source = sources.ravel()
    planted_d = near_duplicate_distance(pixels[source], copies)
    start = time.perf_counter()
    everything = find_near_duplicates(np.concatenate([pixels, copies]))
    planted_runtime = time.perf_counter() - start
    pairs = {(p.first, p.second) for p in everything}
    hit = np.array([(int(s), n + k) in pairs for k, s in enumerate(source.tolist())])
    print(f"Planted copies: {PLANTED_PER_KIND} sources per kind, drawn at random.\n")
    print("| planted copy | median | 99th pct | max | found at threshold |")
    print("|---|---|---|---|---|")
    for number, name in enumerate(kinds):
        part = slice(number * PLANTED_PER_KIND, (number + 1) * PLANTED_PER_KIND)
        d = planted_d[part]
        print(
            f"| {name} | {np.median(d):.1f} | {np.percentile(d, 99):.1f} | {d.max():.1f} "
            f"| {hit[part].sum()}/{PLANTED_PER_KIND} |"
        )
    print()
    print(
        "| threshold | natural pairs under it | search time, 70,000 images | "
        "search time, 72,600 with copies | peak traced memory, 20,000 images |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {DEFAULT_THRESHOLD:g} | {len(found)} | {runtime:.1f} s | {planted_runtime:.1f} s "
        f"| {peak_20k / 2**20:.0f} MiB |\n"
    )


def evaluate_label_errors(
    pixels: Images, labels: npt.NDArray[np.int64], is_test: npt.NDArray[np.bool_]
) -> None:
    """Print the planted-flip recall of each scorer, the full-size runtime and the top 30."""
    print("## Label errors\n")
    rng = np.random.default_rng(7)
    train_part = np.sort(rng.choice(60_000, 10_000, replace=False))
    sample = np.concatenate([train_part, np.arange(60_000, 70_000)])
    noisy = labels[sample].copy()
    flips = np.sort(rng.choice(len(sample), len(sample) // 100, replace=False))
    noisy[flips] = (noisy[flips] + rng.integers(1, 10, len(flips))) % 10
    k = len(flips)
    print(
        f"Sample: the 10,000 test images and 10,000 random train images; {k} labels (1%) "
        "flipped to another random label. Recall = planted flips among the top K.\n"
    )
    print(f"| scorer | recall top {k} | recall top {2 * k} | accuracy vs true labels | time |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        start = time.perf_counter()
        scores = rank_label_errors(pixels[sample], noisy, is_test[sample], method=method)
        elapsed = time.perf_counter() - start
        top = scores.ranked(2 * k)
        accuracy = (scores.probabilities.argmax(axis=1) == labels[sample]).mean()
        print(
            f"| {method} | {np.isin(top[:k], flips).sum()}/{k} | {np.isin(top, flips).sum()}/{k} "
            f"| {accuracy:.4f} | {elapsed:.1f} s |"
        )
    print()

    start = time.perf_counter()
    scores = rank_label_errors(pixels, labels, is_test)
    elapsed = time.perf_counter() - start
    accuracy = (scores.probabilities.argmax(axis=1) == labels).mean()
    print(
        f"Default scorer on all 70,000 images: {elapsed:.1f} s, out-of-sample accuracy "
        f"{accuracy:.4f}, {int((scores.score > 0).sum())} images with score > 0.\n"
    )
    print("Top 30 suspected label errors in the MNIST test set (model fitted on train):\n")
    print("| rank | test index | given | suggested | score |")
    print("|---|---|---|---|---|")
    test = np.flatnonzero(is_test)
    order = test[np.lexsort((test, -scores.score[test]))][:30]
    for rank, pos in enumerate(order.tolist(), start=1):
        print(
            f"| {rank} | {pos - 60_000} | {scores.given[pos]} | {scores.suggested[pos]} "
            f"| {scores.score[pos]:.3f} |"
        )
    print()


def main() -> None:
    """Load MNIST and print both evaluations."""
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    pixels, labels, is_test = load_mnist(folder)
    evaluate_near_duplicates(pixels, labels)
    evaluate_label_errors(pixels, labels, is_test)


if __name__ == "__main__":
    main()
