"""Which 2-D layout the map should draw: a comparison on real MNIST (the table in
docs/web.md, section "Grid, facets and map").

The images of one split (10,000 of the test split by default) are read from a catalog
(MNIST is ingested into a temporary one unless ``--db`` names one), 50 of them get a
planted wrong label (another class, drawn at random; in memory only), and each layout
is scored on the 2-D points it gives:

* *10-NN accuracy*: how often the majority label of a point's 10 nearest 2-D neighbours
  is its own (current, flipped) label; 0.1 is chance for ten balanced classes;
* *flips standing out*: the fraction of the 50 flipped points whose 10 neighbours mostly
  (more than 5) carry another label;
* *all standing out*: the same fraction over every point: a flip stands out only if
  this is small (in a mush, every point "stands out");
* *seconds*: the layout alone, features included (reading pixels is timed apart).

    python benchmarks/map_layouts.py [--mnist DIR] [--db CATALOG] [--split test]
                                     [--points 10000] [--default-tsne]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from web_pages import DEFAULT_MNIST, cli

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.selection import Selection
from catalog.similarity.embed import embed_pixels
from catalog.similarity.layout import (
    fisher_plane,
    pooled_pixels,
    principal_components,
    tsne_plane,
)
from catalog.similarity.projection import map_inputs, principal_plane

FLIPS = 50
K = 10


def neighbour_labels(
    xy: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The labels of each point's ``K`` nearest other points in 2-D, ``(n, K)``."""
    from scipy.spatial import cKDTree

    _, near = cKDTree(np.asarray(xy, np.float64)).query(np.asarray(xy, np.float64), k=K + 1)
    found: npt.NDArray[np.int64] = labels[near[:, 1:]]
    return found


def scores(
    xy: npt.NDArray[np.floating], labels: npt.NDArray[np.int64], flipped: npt.NDArray[np.bool_]
) -> tuple[float, float, float]:
    near = neighbour_labels(xy, labels)
    votes = np.stack([(near == c).sum(axis=1) for c in range(10)], axis=1)
    accuracy = float((votes.argmax(axis=1) == labels).mean())
    own = (near == labels[:, None]).sum(axis=1)
    return accuracy, float((own[flipped] < K / 2).mean()), float((own < K / 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mnist", type=Path,
        default=Path(os.environ.get("MNIST_CATALOG_TEST_MNIST") or DEFAULT_MNIST),
    )  # fmt: skip
    parser.add_argument("--db", type=Path, help="a catalog holding MNIST as dataset mnist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--default-tsne", action="store_true", help="also openTSNE's defaults")
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "mnist.db"
        if args.db is None:
            cli(db, "ingest", str(args.mnist), "--dataset", "mnist")
        with Catalog.open(db) as catalog, session_scope(catalog.engine) as session:
            started = time.perf_counter()
            selection = Selection(dataset="mnist", splits=(args.split,))
            inputs = map_inputs(session, selection, cap=args.points, seed=0)
            pixels = catalog.pixels_of(inputs.ids.tolist())
            print(
                f"{len(inputs.ids):,} of {inputs.total:,} images read: {time.perf_counter() - started:.2f} s"
            )
    rng = np.random.Generator(np.random.PCG64(0))
    flip = rng.choice(len(inputs.ids), FLIPS, replace=False)
    labels = inputs.labels.copy()
    labels[flip] = (labels[flip] + rng.integers(1, 10, FLIPS)) % 10
    flipped = np.zeros(len(labels), bool)
    flipped[flip] = True

    def embedding() -> npt.NDArray[np.float32]:
        return embed_pixels(pixels)

    layouts: dict[str, Callable[[], npt.NDArray[np.floating]]] = {
        "PCA of the DCT embedding (the first map)": lambda: principal_plane(embedding())[0],
        "PCA of the pooled 14x14 pixels": lambda: principal_components(pooled_pixels(pixels), 2),
        "LDA of the DCT embedding": lambda: _fisher(embedding(), labels),
        "LDA of the pooled pixels (the quick layout)": lambda: _fisher(
            pooled_pixels(pixels), labels
        ),
        "t-SNE of the pooled pixels' 50 PCs (the map)": lambda: tsne_plane(pooled_pixels(pixels)),
        "t-SNE of the DCT embedding": lambda: tsne_plane(embedding()),
    }
    if args.default_tsne:
        from openTSNE import TSNE

        layouts["t-SNE, openTSNE defaults (perplexity 30, 250 + 500 iterations)"] = lambda: TSNE(
            n_jobs=2, random_state=0
        ).fit(principal_components(pooled_pixels(pixels), 50))
    print("\n| layout | 10-NN accuracy | flips standing out | all standing out | seconds |")
    print("|---|---:|---:|---:|---:|")
    for name, layout in layouts.items():
        started = time.perf_counter()
        xy = layout()
        seconds = time.perf_counter() - started
        accuracy, flips, everyone = scores(xy, labels, flipped)
        print(
            f"| {name} | {accuracy:.3f} | {flips:.2f} | {everyone:.3f} | {seconds:.2f} |",
            flush=True,
        )


def _fisher(
    features: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    plane = fisher_plane(features, labels)
    assert plane is not None
    return plane


if __name__ == "__main__":
    main()
