"""In-process counts on an existing catalog: wall and CPU time, best of N.

``python benchmarks/count_bench.py CATALOG.db [--dataset NAME] [--repeat N]`` prints one
JSON object: for each count (the whole dataset by split and label, its total, one label
of one split, a range the ``label_counts`` summary cannot answer, and the ``datasets``
listing with per-label counts), the best wall and CPU milliseconds of N runs after one
warm-up run, and the counts' checksum. It opens the catalog without upgrading it, so the
same command times the code before a schema change (run it with that code on
``PYTHONPATH``) and after, alternating, on one catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from catalog.db.engine import make_engine, session_scope
from catalog.select.counts import count_images
from catalog.select.listings import list_datasets
from catalog.selection import Selection


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    result = fn()  # warm: connection, statement caches, pages
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {
        "wall_ms": round(1000 * min(walls), 2),
        "cpu_ms": round(1000 * min(cpus), 2),
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--dataset", default="scaled")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    engine = make_engine(f"sqlite:///{args.db}")
    name = args.dataset

    def count(selection: Selection, by: tuple[str, ...]) -> Callable[[], Any]:
        def run() -> int:
            with session_scope(engine) as session:
                return sum(n for _, n in count_images(session, selection, by))

        return run

    def listing() -> int:
        with session_scope(engine) as session:
            return sum(sum(s.splits.values()) for s in list_datasets(session))

    steps = {
        "split,label": count(Selection(dataset=name), ("split", "label")),
        "total": count(Selection(dataset=name), ()),
        "train label 3": count(Selection(dataset=name, splits=("train",), labels=(3,)), ()),
        "index range (fallback)": count(
            Selection(dataset=name, index_range=(0, 500_000)), ("label",)
        ),
        "datasets listing": listing,
    }
    out = {key: timed(fn, args.repeat) for key, fn in steps.items()}
    out["load"] = [round(x, 1) for x in os.getloadavg()[:2]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
