"""The grid v2 and the map on the real MNIST (70,000 images): page timings, and the
screenshots of the grid with badges, the map and the review progress.

Steps, through the real programs:

1. ingest MNIST into a fresh SQLite catalog and run ``mnist-catalog audit`` (every check:
   the near-duplicate check stores the embeddings the map projects; the run is recorded);
2. start ``mnist-catalog serve`` as a subprocess and read the token URL it prints;
3. time pages with an HTTP client, warm, median of 10 (after 2 warm-ups): overview, the
   grid with its facets (whole catalog; test split; sorted by suspect score; seeded
   random), the map of all 70,000 (20,000 drawn) and of the test split, their JSON twins;
   the map's first answer (nothing kept yet, the quick LDA layout) is timed apart, and
   how long until its t-SNE layout, computed in the background, is ready;
4. in headless Chromium, on a copy of the catalog: five test suspects relabelled to their
   suggestion as one decision set, three images tagged ``blurry``, one excluded, two
   review decisions; screenshots of the grid sorted by suspect score, the map coloured by
   label (once its t-SNE layout is ready, in a taller window), and the review page with
   its progress go to ``docs/``.

    python benchmarks/web_map.py [--mnist DIR] [--db CATALOG] [--screenshots DIR]
                                 [--million CATALOG]

``--db`` reuses a catalog holding MNIST as ``mnist`` with a stored audit (step 1 is
skipped). ``--million`` also times overview, grid and map on that (large) catalog.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import chromium, missing, screenshot
from web_pages import DEFAULT_MNIST, cli, median_ms, start_server

REPEAT = 10


def timings(base: str, dataset: str, split: str = "test", *, wait: bool = True) -> None:
    pages = {
        "overview": "/",
        "grid + facets, whole catalog (500 thumbnails)": f"/grid?dataset={dataset}",
        f"grid + facets, {split} split": f"/grid?dataset={dataset}&split={split}",
        "grid + facets, sorted by suspect score": f"/grid?dataset={dataset}&sort=suspect",
        "grid + facets, seeded random order": f"/grid?dataset={dataset}&sort=random&seed=1",
        "JSON: /api/grid with facets": f"/api/grid?dataset={dataset}",
        "map, whole catalog (20,000 drawn; HTML with its data)": f"/map?dataset={dataset}",
        f"map, {split} split": f"/map?dataset={dataset}&split={split}",
        "JSON: /api/map, whole catalog": f"/api/map?dataset={dataset}",
    }
    with httpx.Client(base_url=base, timeout=120) as client:
        firsts = (f"/map?dataset={dataset}&seed=7", f"/map?dataset={dataset}&split={split}&seed=7")
        started = {}
        for url in firsts:
            started[url] = time.perf_counter()
            client.get(url).raise_for_status()
            print(
                f"first answer of {url} (no map kept yet, quick layout): {(time.perf_counter() - started[url]) * 1000:.0f} ms"
            )
        for url in firsts if wait else ():  # the t-SNE layouts: one after the other
            seconds = laid_out(client, url, started[url])
            print(f"t-SNE layout of {url} ready {seconds:.1f} s after the first request")
        for url in (pages["map, whole catalog (20,000 drawn; HTML with its data)"],
                    pages[f"map, {split} split"]) if wait else ():  # fmt: skip
            laid_out(client, url, time.perf_counter())  # warm pages: t-SNE maps kept
        print(f"\n| page | median of {REPEAT}, warm | bytes |\n|---|---:|---:|")
        for name, path in pages.items():
            ms, size = median_ms(client, path, REPEAT)
            print(f"| {name} | {ms:.1f} ms | {size:,} |")


def laid_out(client: httpx.Client, url: str, started: float) -> float:
    """Seconds from ``started`` until the map at ``url`` has its t-SNE layout (polled)."""
    api = url.replace("/map?", "/api/map?")
    while client.get(api).json()["pending"]:
        if time.perf_counter() - started > 1800:
            raise SystemExit(f"{url}: no t-SNE layout after 30 minutes")
        time.sleep(0.5)
    return time.perf_counter() - started


def decide_for_screenshots(db: Path) -> None:
    """Decisions a reviewer might have made, so the grid has badges to show."""
    from catalog import Catalog

    with Catalog.open(db) as catalog:
        run = catalog.latest_audit()
        assert run is not None
        top = [f for f in run.report.findings if f.check == "label-errors"
               and f.images[0].split == "test"][:12]  # fmt: skip
        for finding in top[:5]:
            ref = finding.images[0]
            catalog.decide_set("relabel", [f"test:{ref.index}"], dataset="mnist",
                               label=int(finding.details["suggested"]), by="ana")  # fmt: skip
        catalog.decide_set("tag", [f"test:{f.images[0].index}" for f in top[5:8]],
                           dataset="mnist", tag="blurry", by="ana")  # fmt: skip
        catalog.decide_set("exclude", [f"test:{top[8].images[0].index}"], dataset="mnist",
                           note="not a digit", by="ana")  # fmt: skip


def in_browser(url: str, base: str, shots: Path) -> None:
    reason = missing()
    if reason:
        raise SystemExit(f"No browser: {reason}")
    shots.mkdir(exist_ok=True)
    with chromium(1280, 860) as driver:
        driver.get(url)
        driver.add_cookie({"name": "catalog_reviewer", "value": "ana", "path": "/"})
        driver.get(f"{base}/grid?dataset=mnist&split=test&sort=suspect&include-excluded=1&size=40")
        time.sleep(0.5)
        screenshot(driver, shots / "web-grid.png", width=1280)
        driver.get(f"{base}/review?dataset=mnist&split=test&undecided=1")
        time.sleep(0.5)
        screenshot(driver, shots / "web-review.png")
    with chromium(1280, 1000) as driver:  # tall enough for the whole map
        driver.get(url)
        driver.add_cookie({"name": "catalog_reviewer", "value": "ana", "path": "/"})
        driver.get(f"{base}/map?dataset=mnist&split=test")
        waited = time.perf_counter()  # the page reloads itself once t-SNE is done
        while driver.find_elements("id", "map-pending"):
            if time.perf_counter() - waited > 1800:
                raise SystemExit("the map page still waits for its t-SNE layout")
            time.sleep(2)
        time.sleep(0.5)
        screenshot(driver, shots / "web-map.png")
    print(f"screenshots: {shots}/web-grid.png, web-map.png, web-review.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mnist", type=Path,
        default=Path(os.environ.get("MNIST_CATALOG_TEST_MNIST") or DEFAULT_MNIST),
    )  # fmt: skip
    parser.add_argument("--screenshots", type=Path, default=HERE.parent / "docs")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--db", type=Path, help="reuse this catalog (MNIST + a stored audit)")
    parser.add_argument("--million", type=Path, help="also time this large catalog")
    parser.add_argument("--million-dataset", default="big")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {load:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "mnist.db"
        if args.db is None:
            started = time.perf_counter()
            print(cli(db, "ingest", str(args.mnist), "--dataset", "mnist").splitlines()[0])
            print(f"ingest: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            cli(db, "audit")
            print(f"audit (recorded, embeddings stored): {time.perf_counter() - started:.1f} s")
        server, url = start_server(db, args.port)
        try:
            timings(url.split("/?token=")[0], "mnist")
        finally:
            server.terminate()
            server.wait(timeout=10)
        if args.million is not None:
            print(f"\n{args.million}:")
            server, url = start_server(args.million, args.port + 1)
            try:
                timings(url.split("/?token=")[0], args.million_dataset, wait=False)
            finally:
                server.terminate()
                server.wait(timeout=10)
        copy = Path(tmp) / "decided.db"
        shutil.copy(db, copy)
        decide_for_screenshots(copy)
        server, url = start_server(copy, args.port + 2)
        try:
            in_browser(url, url.split("/?token=")[0], args.screenshots)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
