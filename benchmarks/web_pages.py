"""The web view on the real MNIST (70,000 images): page timings, the issue's "Must show",
and the README's screenshots.

Steps, each through the real programs:

1. ingest MNIST into a fresh SQLite catalog and run ``mnist-catalog audit --check
   label-errors`` (which records its run);
2. start ``mnist-catalog serve`` as a subprocess and read the token URL it prints;
3. time pages with an HTTP client, warm, median of 20 (after 2 warm-ups): overview,
   grid of test label 3 (500 thumbnails) and its sprite sheet, one image page, one review
   page, and their JSON twins;
4. in headless Chromium: open the token URL, the overview, the grid of test label 3
   (count its 500 thumbnails; time the page to its load event, sprite included), then
   review mode: relabel suspect 1 to its suggestion with ``r`` and walk the top 20 test
   suspects with the arrow key; screenshots of overview, grid and review go to ``docs/``;
5. ``mnist-catalog history`` of the relabelled image shows the browser's decision.

The first image page after ``serve`` starts is timed on its own, before any other
request (its neighbours follow from ``/api/neighbours/...`` once the index built in
the background is ready; the time to that is printed too), then the audit page.

    python benchmarks/web_pages.py [--mnist DIR] [--screenshots DIR] [--db CATALOG]
    python benchmarks/web_pages.py --scale 1000000 --no-browser   # no audit run: as the issue

``--db`` reuses a catalog that already holds MNIST as ``mnist`` and a stored
label-error audit (steps 1 is skipped); the browser's relabel is then undone at the end.
``--scale N`` ingests N images synthesized from MNIST (``benchmarks/scale_bench.py``:
warped train digits and the real test split) as dataset ``mnist``, without an audit run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import chromium, missing, screenshot

DEFAULT_MNIST = HERE.parents[1] / "shared" / "data" / "mnist"
REPEAT = 20


def cli(db: Path, *args: str) -> str:
    env = {**os.environ, "MNIST_CATALOG_DB": str(db)}
    done = subprocess.run(
        [sys.executable, "-m", "catalog", *args], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise SystemExit(f"mnist-catalog {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def median_ms(client: httpx.Client, url: str, repeat: int = REPEAT) -> tuple[float, int]:
    """The median of ``repeat`` timed GETs of ``url`` after two untimed ones (ms), and the
    answer's size in bytes."""
    for _ in range(2):
        response = client.get(url)
        response.raise_for_status()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(times), len(response.content)


def start_server(db: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "MNIST_CATALOG_DB": str(db), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "catalog", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    started = time.perf_counter()
    for line in server.stdout:
        print("  serve:", line.rstrip())
        if "?token=" in line:
            url = line.strip()
            break
    else:
        raise SystemExit("mnist-catalog serve exited before printing its URL")
    base = url.split("/?token=")[0]
    while True:
        try:
            httpx.get(base + "/api/exports", timeout=5).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    print(f"  serve answered {time.perf_counter() - started:.1f} s after start")
    return server, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--screenshots", type=Path, default=HERE.parent / "docs")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, help="reuse this catalog (MNIST + a stored audit)")
    parser.add_argument("--scale", type=int, help="N synthesized images, no audit run")
    parser.add_argument("--no-browser", action="store_true", help="HTTP timings only")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {load:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "mnist.db"
        if args.scale:
            from scale_bench import synthesize

            started = time.perf_counter()
            synthesize(args.mnist, Path(tmp), args.scale)
            print(f"synthesized {args.scale:,} images: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            cli(db, "ingest", str(Path(tmp) / "src"), "--dataset", "mnist")
            print(f"ingest: {time.perf_counter() - started:.1f} s")
        elif args.db is None:
            started = time.perf_counter()
            cli(db, "ingest", str(args.mnist), "--dataset", "mnist")
            print(f"ingest: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            audit = cli(db, "audit", "--check", "label-errors")
            print(f"audit --check label-errors (recorded): {time.perf_counter() - started:.1f} s")
            print("  " + "\n  ".join(audit.strip().splitlines()[:4]))
        server, url = start_server(db, args.port)
        try:
            base = url.split("/?token=")[0]
            timings(base, audited=not args.scale)
            if args.no_browser:
                return
            relabelled = in_browser(url, base, args.screenshots)
        finally:
            server.terminate()
            server.wait(timeout=10)
        print(f"\n$ mnist-catalog history test:{relabelled}")
        print(cli(db, "history", f"test:{relabelled}"))
        if args.db is not None:  # leave the reused catalog's labels as they were
            last = cli(db, "history", f"test:{relabelled}").strip().splitlines()[-1]
            cli(db, "undo", last.split()[0].lstrip("#"))


def first_image(client: httpx.Client) -> None:
    """The first image page after start, then the time until its neighbours are ready."""
    started = time.perf_counter()
    page = client.get("/image/mnist/test/1530")
    page.raise_for_status()
    first = time.perf_counter() - started
    follow = "neighbours follow" in page.text
    print(f"first image page after start: {first * 1000:.0f} ms "
          f"({'neighbours follow' if follow else 'neighbours in the page'})")  # fmt: skip
    during: dict[str, list[float]] = {"neighbours poll": [], "overview": [], "grid": []}
    urls = {"neighbours poll": "/api/neighbours/mnist/test/1530", "overview": "/",
            "grid": "/grid?split=test&label=3&size=500"}  # fmt: skip
    while True:
        for name, path in urls.items():
            asked = time.perf_counter()
            response = client.get(path)
            during[name].append((time.perf_counter() - asked) * 1000)
        if response.status_code == 200 and client.get(urls["neighbours poll"]).json()["ready"]:
            break
        time.sleep(0.1)
    waited = time.perf_counter() - started
    print(f"  its neighbours ready {waited:.1f} s after it was asked; while the index was "
          "built, pages answered in (median / max):")  # fmt: skip
    for name, times in during.items():
        print(f"    {name}: {statistics.median(times):.0f} / {max(times):.0f} ms "
              f"({len(times)} requests)")  # fmt: skip
    started = time.perf_counter()
    client.get("/image/mnist/test/1531").raise_for_status()
    print(f"second image page (index built): {(time.perf_counter() - started) * 1000:.0f} ms")


def timings(base: str, *, audited: bool = True) -> None:
    pages = {
        "overview": "/",
        "grid, test label 3, 500 thumbnails (HTML)": "/grid?split=test&label=3&size=500",
        "grid's sprite sheet (500 digits, PNG)": "/sprite.png?split=test&label=3&page=1&size=500",
        "image page (with 12 neighbours)": "/image/mnist/test/1530",
        "review page (suspect 1 + neighbours)": "/review?split=test&n=1",
        "audit page": "/audit",
        "thumbnail by sha256 (PNG)": None,
        "JSON: /api/overview": "/api/overview",
        "JSON: /api/grid, 500 images": "/api/grid?split=test&label=3&size=500",
        "JSON: /api/image": "/api/image/mnist/test/1530",
    }
    if not audited:  # the review page needs an audit run; the audit page says there is none
        del pages["review page (suspect 1 + neighbours)"]
    with httpx.Client(base_url=base, timeout=60) as client:
        first_image(client)
        thumb = client.get("/api/image/mnist/test/1530").json()["thumb"]
        pages["thumbnail by sha256 (PNG)"] = thumb
        print("\n| page | median of 20, warm | bytes |\n|---|---:|---:|")
        for name, path in pages.items():
            assert path is not None
            ms, size = median_ms(client, path)
            print(f"| {name} | {ms:.1f} ms | {size:,} |")


def in_browser(url: str, base: str, shots: Path) -> str:
    reason = missing()
    if reason:
        raise SystemExit(f"No browser: {reason}")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shots.mkdir(exist_ok=True)
    with chromium(1280, 860) as driver:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        screenshot(driver, shots / "web-overview.png")
        loads = []
        for _ in range(5):
            driver.get(f"{base}/grid?split=test&label=3")
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
            loads.append(driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return t.loadEventEnd - t.startTime;"
            ))  # fmt: skip
        cells = driver.find_elements(By.CSS_SELECTOR, ".grid .cell")
        print(f"\nbrowser: grid of test label 3 shows {len(cells)} thumbnails; "
              f"load event after {statistics.median(loads):.0f} ms (median of 5; "
              f"first {loads[0]:.0f} ms)")  # fmt: skip
        screenshot(driver, shots / "web-grid.png")
        driver.get(f"{base}/review?split=test")
        review = driver.find_element(By.ID, "review")
        first, suggested = (
            review.get_attribute("data-index"),
            review.get_attribute("data-suggested"),
        )
        driver.find_element(By.TAG_NAME, "body").send_keys("r")
        wait.until(ec.alert_is_present())
        driver.switch_to.alert.send_keys("browser-reviewer")
        driver.switch_to.alert.accept()
        wait.until(lambda d: "Recorded" in d.find_element(By.ID, "status").text)
        screenshot(driver, shots / "web-review.png")
        seen = [first]
        started = time.perf_counter()
        for _ in range(19):
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
            wait.until(
                lambda d: d.find_element(By.ID, "review").get_attribute("data-index") != seen[-1]
            )
            seen.append(driver.find_element(By.ID, "review").get_attribute("data-index"))
        walk = time.perf_counter() - started
        print(f"browser: walked suspects 1-20 of test with the arrow key in {walk:.1f} s "
              f"({walk / 19 * 1000:.0f} ms a step): {', '.join(seen)}")  # fmt: skip
        print(f"browser: relabelled test:{first} to {suggested} with 'r'")
        assert len(set(seen)) == 20
    return str(first)


if __name__ == "__main__":
    main()
