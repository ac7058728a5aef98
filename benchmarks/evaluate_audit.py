"""Measure the near-duplicate and label-error audits on the real MNIST files.

Run ``python benchmarks/evaluate_audit.py [MNIST_DIR] [--methods deskew-mlp,mlp,...]``;
MNIST_DIR defaults to ``../shared/data/mnist`` beside the repository. Prints the Markdown
tables of ``docs/audit-methods.md``. Label errors: for each noise model of
``label_noise.py`` (confusable and uniform flips, planted in train and test), each scorer
judges all 70,000 images (test by a model fitted on train, train cross-fitted) in a fresh
process, which gives its time and peak RSS; two fits run at once, as in the audit. Results are kept in
``--work`` so an interrupted run resumes. About 5 minutes per scorer without ``cnn``,
15 more with it, on 2 shared cores.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from label_noise import NOISE_MODELS, hits, pairs_table, plant, separate_votes, top_overlap

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
PLANTED = (300, 100)  # label flips planted in train and in test (0.5% and 1%)


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


def run_one(folder: Path, method: str, noise: str, seed: int, votes_path: Path, out: Path) -> None:
    """Child process: score one planted (or the clean) MNIST with one scorer; JSON to ``out``."""
    pixels, labels, is_test = load_mnist(folder)
    votes = np.load(votes_path)
    if noise == "clean":
        noisy, flips = labels, np.zeros(0, np.int64)
    else:
        noisy, flips = plant(noise, labels, is_test, PLANTED, votes)
    start = time.perf_counter()
    scores = rank_label_errors(pixels, noisy, is_test, method=method, seed=seed)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    right = scores.probabilities.argmax(axis=1) == labels
    np.save(out.with_suffix(".npy"), scores.score)
    result = {
        "method": method, "noise": noise, "seed": seed, "seconds": round(elapsed, 1),
        "test": hits(scores.score, is_test, flips), "train": hits(scores.score, ~is_test, flips),
        "accuracy_test": float(right[is_test].mean()),
        "accuracy_train": float(right[~is_test].mean()),
        "pairs": pairs_table(labels, noisy, flips) if len(flips) else "",
        "suggested": scores.suggested.tolist() if noise == "clean" else [],
    }  # fmt: skip
    out.write_text(json.dumps(result), encoding="utf-8")


def measure(folder: Path, method: str, noise: str, seed: int, work: Path) -> dict[str, Any]:
    """Run :func:`run_one` in a fresh process; add its peak RSS (MB)."""
    out = work / f"{method}-{noise}-{seed}.json"
    if out.exists():
        return dict(json.loads(out.read_text(encoding="utf-8")))
    part = work / "part.json"
    child = subprocess.Popen([sys.executable, __file__, str(folder), "--run", method, noise,
                              str(seed), str(work / "votes.npy"), str(part)])  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{method} {noise} failed ({child.returncode})")
    result = dict(json.loads(part.read_text(encoding="utf-8")))
    result["peak_mb"] = round(usage.ru_maxrss / 1024)
    part.with_suffix(".npy").rename(out.with_suffix(".npy"))
    out.write_text(json.dumps(result), encoding="utf-8")
    return result


def evaluate_label_errors(folder: Path, methods: list[str], work: Path, overlap: list[str]) -> None:
    """Print, per noise model, each scorer's planted flips in its top 30/100/200, its
    out-of-sample accuracy, time and peak memory; the seed overlap; and the top 30."""
    pixels, labels, is_test = load_mnist(folder)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "votes.npy").exists():
        np.save(work / "votes.npy", separate_votes(pixels, labels))
    votes = np.load(work / "votes.npy")
    print("## Label errors\n")
    train_k, test_k = PLANTED
    for noise in NOISE_MODELS:
        noisy, flips = plant(noise, labels, is_test, PLANTED, votes)
        print(f"### {noise} flips: {train_k} train and {test_k} test labels flipped\n")
        print(f"Most common flips (true->planted): {pairs_table(labels, noisy, flips)}.\n")
        print("| scorer | test: top 30 | top 100 | top 200 | train: top 30 | top 100 "
              "| top 200 | accuracy test / train | time | peak RSS |")  # fmt: skip
        print("|---" * 10 + "|")
        for method in methods:
            r = measure(folder, method, noise, 0, work)
            print(f"| {method} | {' | '.join(map(str, r['test']))} | "
                  f"{' | '.join(map(str, r['train']))} | {r['accuracy_test']:.4f} / "
                  f"{r['accuracy_train']:.4f} | {r['seconds']:.0f} s | {r['peak_mb']:,} MB |")  # fmt: skip
        print()
    if overlap:
        print("### Stability: the top 100 of two seeds on the real MNIST (no planted flips)\n")
        print("| scorer | test top 100 shared, seeds 0 and 1 | train top 100 shared |")
        print("|---|---|---|")
        for method in overlap:
            a, b = (np.load(work / f"{method}-clean-{s}.npy") for s in (0, 1)
                    if measure(folder, method, "clean", s, work))  # fmt: skip
            print(f"| {method} | {top_overlap(a, b, is_test)} | {top_overlap(a, b, ~is_test)} |")
        print()
    default = methods[0]
    clean = measure(folder, default, "clean", 0, work)
    score = np.load(work / f"{default}-clean-0.npy")
    print(f"Top 30 suspected label errors in the MNIST test set ({default}, fitted on train):\n")
    print("| rank | test index | given | suggested | score |")
    print("|---|---|---|---|---|")
    test = np.flatnonzero(is_test)
    order = test[np.lexsort((test, -score[test]))][:30]
    for rank, pos in enumerate(order.tolist(), start=1):
        print(f"| {rank} | {pos - 60_000} | {labels[pos]} | {clean['suggested'][pos]} "
              f"| {score[pos]:.3f} |")  # fmt: skip
    print()


def main() -> None:
    """Load MNIST and print the evaluations."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mnist", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="scorers to measure, the first the default (comma-separated)",
    )
    parser.add_argument(
        "--overlap",
        default="deskew-mlp,mlp",
        help="scorers whose top 100 is compared between seeds 0 and 1",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/evaluate-audit"),
        help="where results are kept (a finished measurement is not rerun)",
    )
    parser.add_argument("--skip-near", action="store_true", help="only the label errors")
    parser.add_argument("--run", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        method, noise, seed, votes, out = args.run
        run_one(args.mnist, method, noise, int(seed), Path(votes), Path(out))
        return
    if not args.skip_near:
        pixels, labels, _ = load_mnist(args.mnist)
        evaluate_near_duplicates(pixels, labels)
    methods = [m for m in args.methods.split(",") if m]
    overlap = [m for m in args.overlap.split(",") if m]
    evaluate_label_errors(args.mnist, methods, args.work, overlap)


if __name__ == "__main__":
    main()
