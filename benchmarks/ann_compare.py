"""Compare nearest-neighbour libraries on the catalog's image embeddings.

    python benchmarks/ann_compare.py [--mnist DIR] [--scale N] [--sample 5000]

The data are the embeddings (:mod:`catalog.similarity.embed`) of the real MNIST train and
test digits (70,000), or with ``--scale N`` of N images made from the real digits by small
random affine warps (rotation up to 12 degrees, scale 0.9-1.1, shear up to 0.15, shift up
to 1.5 pixels; warped, not copied). Each library then finds the 10 nearest neighbours of
*every* point (the audit's job), in a fresh subprocess so that its time and peak memory are
its own:

- ``exact``: the blocked float32 numpy search of :mod:`catalog.similarity.index` (the
  fallback; run only where it finishes in reasonable time);
- ``faiss-hnsw``: faiss ``IndexHNSWFlat`` (M=32, efConstruction=80, efSearch=64);
- ``faiss-ivf``: faiss ``IndexIVFFlat`` as :class:`catalog.similarity.index.FaissIndex`
  builds it (4 sqrt(N) lists, k-means on 40 points per list, nprobe=8);
- ``hnswlib``: ``hnswlib.Index`` (M=16, ef_construction=100, ef=64);
- ``pynndescent``: ``NNDescent(n_neighbors=11)``, whose graph is the all-points answer
  (its first run also pays numba's compilation, reported as part of build).

Recall@10 is measured against an exact search of a random sample of points (``--sample``),
self excluded. Peak RSS is the worker's maximum resident set, and "above data" subtracts
the RSS after loading the vectors. Install size sums each distribution's RECORD (the
package and the dependencies it alone brings: numba, llvmlite, scikit-learn, scipy, joblib
for pynndescent). Every figure comes from one run; the machine has 2 cores (2 threads
each library).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale_bench import warp  # the scale benchmark's warped digits, one synthesizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
K = 10
THREADS = 2
LIBRARIES = ("exact", "faiss-hnsw", "faiss-ivf", "hnswlib", "pynndescent")
OWN_DEPENDENCIES = {
    "exact": [],
    "faiss-hnsw": ["faiss-cpu"],
    "faiss-ivf": ["faiss-cpu"],
    "hnswlib": ["hnswlib"],
    "pynndescent": ["pynndescent", "numba", "llvmlite", "scikit-learn", "scipy", "joblib"],
}


def load_mnist(mnist: Path) -> np.ndarray:
    parts = []
    for prefix in ("train", "t10k"):
        raw = gzip.decompress((mnist / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
        parts.append(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28))
    return np.concatenate(parts)


def make_vectors(mnist: Path, scale: int | None) -> tuple[np.ndarray, str]:
    from catalog.similarity.embed import embed_pixels

    real = load_mnist(mnist)
    if scale is None:
        return embed_pixels(real), "real MNIST train + test"
    rng = np.random.default_rng(0)
    parts, made = [], 0
    while made < scale:
        take = min(10_000, scale - made)
        sources = rng.integers(0, len(real), take)
        parts.append(embed_pixels(warp(real[sources], rng)))
        made += take
    return np.concatenate(parts), f"{scale:,} affine warps of real MNIST digits"


def rss_mb() -> float:
    """Peak resident set of this process since its exec (``VmHWM``; ``ru_maxrss`` would
    carry over the parent's peak across fork and exec)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(library: str, vectors_path: Path, out: Path) -> None:
    data = np.load(vectors_path)
    base = current_rss_mb()
    n, d = data.shape
    start = time.perf_counter()
    if library == "exact":
        from catalog.similarity.index import ExactIndex

        index = ExactIndex(data)
        built = time.perf_counter()
        positions, _ = index.query_all(K)
    elif library.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(THREADS)
        if library == "faiss-hnsw":
            fi = faiss.IndexHNSWFlat(d, 32)
            fi.hnsw.efConstruction = 80
            fi.add(data)
            fi.hnsw.efSearch = 64
        else:
            from catalog.similarity.index import FaissIndex

            fi = FaissIndex(data, threads=THREADS).index  # the product's own settings
        built = time.perf_counter()
        _, found = fi.search(data, K + 1)
        positions = drop_self(found)
    elif library == "hnswlib":
        import hnswlib

        hi = hnswlib.Index(space="l2", dim=d)
        hi.init_index(max_elements=n, ef_construction=100, M=16, random_seed=0)
        hi.set_num_threads(THREADS)
        hi.add_items(data, np.arange(n))
        hi.set_ef(64)
        built = time.perf_counter()
        found, _ = hi.knn_query(data, k=K + 1)
        positions = drop_self(found.astype(np.int64))
    elif library == "pynndescent":
        from pynndescent import NNDescent

        nd = NNDescent(data, n_neighbors=K + 1, random_state=0, n_jobs=THREADS)
        built = time.perf_counter()
        found, _ = nd.neighbor_graph
        positions = drop_self(found.astype(np.int64))
    else:
        raise SystemExit(f"unknown library {library}")
    done = time.perf_counter()
    np.save(out, positions)
    result = {
        "build_s": built - start,
        "query_s": done - built,
        "peak_mb": rss_mb(),
        "above_data_mb": rss_mb() - base,
    }
    print(json.dumps(result))


def drop_self(found: np.ndarray) -> np.ndarray:
    """Each row's K neighbours other than the row itself."""
    rows = np.arange(len(found))[:, None]
    keep = found != rows
    out = np.empty((len(found), K), np.int64)
    for i in range(len(found)):  # small per-row fix-up of the self hit
        out[i] = found[i][keep[i]][:K]
    return out


def exact_truth(data: np.ndarray, sample: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", data, data)
    truth = np.empty((len(sample), K), np.int64)
    for start in range(0, len(sample), 512):
        rows = sample[start : start + 512]
        d2 = sq[rows, None] + sq[None, :] - 2 * data[rows] @ data.T
        d2[np.arange(len(rows)), rows] = np.inf
        part = np.argpartition(d2, K, axis=1)[:, :K]
        truth[start : start + len(rows)] = part
    return truth


def install_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--sample", type=int, default=5000)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.vectors, args.out)
        return
    start = time.perf_counter()
    data, what = make_vectors(args.mnist, args.scale)
    made = time.perf_counter() - start
    rng = np.random.default_rng(1)
    sample = rng.choice(len(data), min(args.sample, len(data)), replace=False)
    truth = exact_truth(data, sample)
    print(f"{what}: {len(data):,} x {data.shape[1]} embeddings in {made:.1f} s; k={K}, "
          f"recall on {len(sample):,} sampled points, {THREADS} threads\n")  # fmt: skip
    print("| library | build | query all (k=10) | total | recall@10 | peak RSS "
          "(above data) | install |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        vectors = Path(tmp) / "vectors.npy"
        np.save(vectors, data)
        del data
        for library in args.libraries.split(","):
            out = Path(tmp) / f"{library}.npy"
            command = [sys.executable, __file__, "--worker", library, "--vectors", str(vectors),
                       "--out", str(out)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"| {library} | failed: {done.stderr.strip().splitlines()[-1]} |")
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            found = np.load(out)[sample]
            hits = sum(len(set(a) & set(b)) for a, b in zip(found, truth, strict=True))
            recall = hits / truth.size
            size = install_mb(OWN_DEPENDENCIES[library])
            total = figures["build_s"] + figures["query_s"]
            print(f"| {library} | {figures['build_s']:.1f} s | {figures['query_s']:.1f} s | "
                  f"{total:.1f} s | {recall:.4f} | {figures['peak_mb']:.0f} MB "
                  f"({figures['above_data_mb']:.0f} MB) | {size:.0f} MB |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
