"""Measure embeddings and near-duplicate candidates on the real MNIST (and bigger sets).

    python benchmarks/similarity_bench.py [--mnist DIR] [--scale N] [--work DIR]

Without ``--scale`` the dataset is the real MNIST train + test (70,000); with ``--scale N``
it is N images made from the real digits by small random affine warps (see
``ann_compare.py``), written as IDX files and ingested first. Each step runs in a fresh
subprocess on a SQLite catalog, so its wall time and peak RSS (``VmHWM``) are its own:

- ``embed``: compute and store every image's embedding (:func:`compute_embeddings`);
- ``embed-again``: the same call once all are stored (the incremental case: nothing to do);
- ``candidates``: load the embeddings, build the index (faiss HNSW above 20,000 images)
  and list the near-duplicate candidate pairs (:func:`candidate_pairs`);
- ``planted`` (70,000 only): 200 planted copies of each kind added to the real digits in
  memory (no catalog); are they all among the candidates, and how far are they?
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from ann_compare import DEFAULT_MNIST, load_mnist, rss_mb, warp


def peak_mb() -> float:
    return rss_mb()


def step_embed(db: Path) -> dict[str, object]:
    from catalog.db.engine import session_scope
    from catalog.db.schema import open_engine
    from catalog.similarity.vectors import compute_embeddings

    engine = open_engine(db)
    start = time.perf_counter()
    with session_scope(engine, write=True) as session:
        done = compute_embeddings(session)
    return {"images": done, "seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


def step_candidates(db: Path) -> dict[str, object]:
    from catalog.db.engine import session_scope
    from catalog.db.schema import open_engine
    from catalog.similarity.index import build_index
    from catalog.similarity.neighbours import NeighbourIndex, candidate_pairs
    from catalog.similarity.vectors import load_embeddings

    engine = open_engine(db)
    start = time.perf_counter()
    with session_scope(engine) as session:
        stored = load_embeddings(session)
    loaded = time.perf_counter()
    index = NeighbourIndex(stored.ids, stored.vectors, build_index(stored.vectors))
    built = time.perf_counter()
    pairs = sum(len(block) for block in candidate_pairs(index))
    done = time.perf_counter()
    return {
        "images": len(stored),
        "load_s": loaded - start,
        "build_s": built - loaded,
        "candidates_s": done - built,
        "seconds": done - start,
        "pairs": pairs,
        "peak_mb": peak_mb(),
    }


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def repaint(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    out.flat[rng.choice(out.size, count, replace=False)] = rng.integers(0, 256, count)
    return out


def step_planted(mnist: Path) -> dict[str, object]:
    from catalog.similarity.embed import embed_pixels
    from catalog.similarity.index import build_index
    from catalog.similarity.neighbours import NeighbourIndex, candidate_pairs

    real = load_mnist(mnist)
    rng = np.random.default_rng(7)
    kinds = {
        "shift down": lambda a: np.roll(a, 1, axis=0),
        "shift left": lambda a: np.roll(a, -1, axis=1),
        "shift up-right": lambda a: np.roll(a, (-1, 1), axis=(0, 1)),
        "JPEG q=75": lambda a: jpeg(a, 75),
        "JPEG q=95": lambda a: jpeg(a, 95),
        "3 random pixels": lambda a: repaint(a, 3, rng),
        "10 random pixels": lambda a: repaint(a, 10, rng),
        "contrast x0.6 + 50": lambda a: (a * 0.6 + 50).astype(np.uint8),
    }
    copies, sources, names = [], [], []
    for name, make in kinds.items():
        picked = rng.choice(len(real), 200, replace=False)
        copies += [make(real[i]) for i in picked]
        sources += picked.tolist()
        names += [name] * len(picked)
    images = np.concatenate([real, np.stack(copies)])
    vectors = embed_pixels(images)
    index = NeighbourIndex(np.arange(len(images)), vectors, build_index(vectors))
    found: set[tuple[int, int]] = set()
    pairs = 0
    for block in candidate_pairs(index):
        found.update(zip(block.first.tolist(), block.second.tolist(), strict=True))
        pairs += len(block)
    rows: dict[str, dict[str, float]] = {}
    for k, (source, name) in enumerate(zip(sources, names, strict=True)):
        copy = len(real) + k
        entry = rows.setdefault(name, {"found": 0, "total": 0, "max": 0.0, "dists": []})  # type: ignore[dict-item]
        entry["total"] += 1
        entry["found"] += (source, copy) in found
        distance = float(np.linalg.norm(vectors[source] - vectors[copy]))
        entry["dists"].append(distance)  # type: ignore[attr-defined]
    for entry in rows.values():
        dists = np.asarray(entry.pop("dists"))
        entry["median"] = float(np.median(dists))
        entry["p99"] = float(np.quantile(dists, 0.99))
        entry["max"] = float(dists.max())
    return {"images": len(images), "pairs": pairs, "kinds": rows, "peak_mb": peak_mb()}


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The train split as IDX files (uncompressed: gzip would dominate the set-up)."""
    folder.mkdir(parents=True)
    n, h, w = images.shape
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", n, h, w)
    (folder / "train-images-idx3-ubyte").write_bytes(header + images.tobytes())
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", n)
    (folder / "train-labels-idx1-ubyte").write_bytes(header + labels.tobytes())


def run_step(name: str, args: list[str]) -> dict[str, object]:
    command = [sys.executable, __file__, "--step", name, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def prepare(mnist: Path, work: Path, scale: int | None) -> Path:
    db = work / "catalog.db"
    from catalog import Catalog

    if scale is None:
        source = mnist
    else:
        real = load_mnist(mnist)
        rng = np.random.default_rng(0)
        picked = rng.integers(0, len(real), scale)
        source = work / "warped"
        parts = [warp(real[picked[s : s + 10_000]], rng) for s in range(0, scale, 10_000)]
        write_idx(source, np.concatenate(parts), (picked % 10).astype(np.uint8))
    start = time.perf_counter()
    with Catalog.open(db) as catalog:
        catalog.ingest(source, dataset="bench")
    print(f"ingested in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        if args.step == "embed":
            result = step_embed(args.db)
        elif args.step == "candidates":
            result = step_candidates(args.db)
        else:
            result = step_planted(args.mnist)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        db = prepare(args.mnist, Path(tmp), args.scale)
        what = "real MNIST" if args.scale is None else f"{args.scale:,} warped digits"
        print(f"## {what}\n\n| step | images | time | peak RSS | notes |\n|---|---:|---:|---:|---|")
        embed = run_step("embed", ["--db", str(db)])
        print(f"| compute + store embeddings | {embed['images']:,} | {embed['seconds']:.1f} s | "
              f"{embed['peak_mb']:.0f} MB | |", flush=True)  # fmt: skip
        again = run_step("embed", ["--db", str(db)])
        print(f"| again (all stored) | {again['images']:,} | {again['seconds']:.1f} s | "
              f"{again['peak_mb']:.0f} MB | |", flush=True)  # fmt: skip
        cand = run_step("candidates", ["--db", str(db)])
        print(f"| load + index + candidates | {cand['images']:,} | {cand['seconds']:.1f} s | "
              f"{cand['peak_mb']:.0f} MB | load {cand['load_s']:.1f} s, build "
              f"{cand['build_s']:.1f} s, query {cand['candidates_s']:.1f} s; "
              f"{cand['pairs']:,} pairs |", flush=True)  # fmt: skip
    if args.scale is None:
        planted = run_step("planted", ["--mnist", str(args.mnist)])
        print(f"\n## Planted copies among {planted['images']:,} images "
              f"({planted['pairs']:,} candidate pairs, peak {planted['peak_mb']:.0f} MB)\n")  # fmt: skip
        print(
            "| copy | found among candidates | median | 99th pct | max |\n|---|---:|---:|---:|---:|"
        )
        for name, row in planted["kinds"].items():  # type: ignore[attr-defined]
            print(f"| {name} | {row['found']}/{row['total']} | {row['median']:.3f} | "
                  f"{row['p99']:.3f} | {row['max']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
