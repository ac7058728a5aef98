"""``bench.py --scale N``: how mnist-catalog grows, on N synthesized images.

The dataset is drawn from the real MNIST digits: ``N - 10,000`` train images, each a real
train digit (cycled) re-drawn through a small random affine warp (rotation up to 12
degrees, scale 0.9-1.1, shear up to 0.15, shift up to 1.5 pixels; bilinear), so no two are
copies, and the real 10,000 test digits. It is written as uncompressed IDX files and
ingested like any source. Each step runs in its own process (wall time, CPU time and peak
RSS are its own) and records the load average, since other work may share the cores:

- ingest; ``count --by split,label`` as a whole process and in-process;
- ``.arrays()`` of 60,000 train images, against a raw ``sqlite3`` fetch of the same blobs;
- export of one label as PNG with 1 and 2 jobs, against the file-system floor (the same
  number of raw pixel files written by 1 and 2 processes);
- full audit (every check, or all but those named by ``--audit-skip``, which the result
  records), then 10,000 more images ingested and the audit again (incremental: stored
  embeddings are reused).

Steps already in ``WORK/scale-N.json`` are kept when a later run (``--scale-steps``) on the
same data redoes others; synthesis is redone only when asked for (``synthesize``) or absent.

Results go to ``WORK/scale-N.json``; ``--plot`` draws time and memory against N from all
``scale-*.json`` in WORK.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]
TEST = 10_000
EXTRA = 10_000
WARP_SEED = 2026


def read_idx(path: Path, offset: int) -> npt.NDArray[np.uint8]:
    return np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=offset)


def warp(images: Pixels, rng: np.random.Generator) -> Pixels:
    """Each image through its own small random affine map (bilinear, zero outside)."""
    n, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-12, 12, n))
    scale = rng.uniform(0.9, 1.1, n)
    shear = rng.uniform(-0.15, 0.15, n)
    shift = rng.uniform(-1.5, 1.5, (n, 2))
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    yc, xc = ys.ravel() - (h - 1) / 2, xs.ravel() - (w - 1) / 2
    src_y = (cos[:, None] * yc - sin[:, None] * xc) + (h - 1) / 2 + shift[:, :1]
    src_x = (
        (sin[:, None] * yc + cos[:, None] * xc + shear[:, None] * yc) + (w - 1) / 2 + shift[:, 1:]
    )
    y0, x0 = np.floor(src_y).astype(np.int64), np.floor(src_x).astype(np.int64)
    fy, fx = (src_y - y0).astype(np.float32), (src_x - x0).astype(np.float32)
    padded = np.pad(images, ((0, 0), (1, 2), (1, 2))).astype(np.float32)
    flat = padded.reshape(n, -1)
    stride = w + 3
    yi, xi = np.clip(y0 + 1, 0, h + 1), np.clip(x0 + 1, 0, w + 1)
    base = yi * stride + xi
    rows = np.arange(n)[:, None]
    out = (
        flat[rows, base] * (1 - fy) * (1 - fx)
        + flat[rows, base + 1] * (1 - fy) * fx
        + flat[rows, base + stride] * fy * (1 - fx)
        + flat[rows, base + stride + 1] * fy * fx
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, h, w)


def write_idx(folder: Path, prefix: str, pixels: Pixels, labels: npt.NDArray[np.uint8]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = pixels.shape
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + np.array([n, h, w], ">u4").tobytes())
        f.write(np.ascontiguousarray(pixels).tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + labels.tobytes())


def synthesize(mnist: Path, work: Path, n: int) -> dict[str, object]:
    """Write ``n`` images (``n - 10,000`` warped train digits + the real test split) and
    ``EXTRA`` more warped ones (split ``extra``) for the incremental audit."""
    x = read_idx(mnist / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y = read_idx(mnist / "train-labels-idx1-ubyte.gz", 8)
    tx = read_idx(mnist / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    ty = read_idx(mnist / "t10k-labels-idx1-ubyte.gz", 8)
    rng = np.random.default_rng(WARP_SEED)
    train = n - TEST
    source = np.arange(train + EXTRA) % len(x)
    pixels = np.empty((train + EXTRA, 28, 28), np.uint8)
    for start in range(0, len(source), 5_000):
        part = source[start : start + 5_000]
        pixels[start : start + len(part)] = warp(x[part], rng)
    write_idx(work / "src", "train", pixels[:train], y[source[:train]])
    write_idx(work / "src", "t10k", tx, ty)
    write_idx(work / "extra", "extra", pixels[train:], y[source[train:]])
    return {"images": n, "extra": EXTRA}


def _fresh_db(work: Path) -> Path:
    db = work / "catalog.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return db


def step_ingest(work: Path) -> dict[str, object]:
    from catalog import Catalog

    catalog = Catalog.open(_fresh_db(work))
    started = time.perf_counter()
    result = catalog.ingest(work / "src", dataset="scaled")
    return {"seconds": time.perf_counter() - started, "images": result.total}


def step_count(work: Path) -> dict[str, object]:
    """``count --by split,label`` as a whole process (best of 3), and in-process (median of 5)."""
    command = [sys.executable, "-m", "catalog", "--db", str(work / "catalog.db"), "count",
               "--by", "split,label"]  # fmt: skip
    whole = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=Path(__file__).parents[1])
        whole.append(time.perf_counter() - started)
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    inside = []
    for _ in range(6):
        started = time.perf_counter()
        catalog.select(dataset="scaled").counts(("split", "label"))
        inside.append(time.perf_counter() - started)
    return {
        "seconds": min(whole),
        "process_runs": whole,
        "in_process_ms": 1000 * float(np.median(inside[1:])),
    }


def step_arrays(work: Path) -> dict[str, object]:
    """``.arrays()`` of the first 60,000 train images against raw sqlite3 of the same blobs."""
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    selection = catalog.select(dataset="scaled", split="train", index=(0, 60_000))

    def raw() -> int:
        conn = sqlite3.connect(work / "catalog.db")
        rows = conn.execute(
            "SELECT pixels FROM images WHERE split = 'train' AND idx < 60000 ORDER BY idx"
        ).fetchall()
        pixels = np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(-1, 28, 28)
        conn.close()
        return len(pixels)

    def product() -> int:
        return len(selection.arrays()[0])

    times: dict[str, list[float]] = {"raw": [], "arrays": []}
    for _ in range(3):  # taking turns, so both see the same load
        for name, fn in (("raw", raw), ("arrays", product)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    best = {k: min(v) for k, v in times.items()}
    return {
        "seconds": best["arrays"],
        "raw_seconds": best["raw"],
        "ratio": best["arrays"] / best["raw"],
    }


def _export_floor(work: Path, processes: int, pixels: Pixels) -> float:
    """Write ``pixels`` as raw files from ``processes`` processes (fork), one folder."""
    out = Path(tempfile.mkdtemp(prefix=f"floor-{processes}-", dir=work))
    started = time.perf_counter()
    children = []
    for p in range(processes):
        pid = os.fork()
        if pid == 0:
            for i in range(p, len(pixels), processes):
                fd = os.open(out / f"{i:07d}_1.raw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, pixels[i].tobytes())
                os.close(fd)
            os._exit(0)  # a forked child must not run the parent's cleanup
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return time.perf_counter() - started


def step_export(work: Path) -> dict[str, object]:
    """Label 1 of every split as PNG, 1 and 2 jobs, against raw files from 1 and 2 processes."""
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    selection = catalog.select(dataset="scaled", labels=[1])
    pixels, _ = selection.arrays()
    out: dict[str, object] = {"images": len(pixels)}
    for jobs in (1, 2):
        folder = Path(tempfile.mkdtemp(prefix=f"export-{jobs}-", dir=work))
        started = time.perf_counter()
        selection.export(folder, jobs=jobs)
        out[f"export_{jobs}"] = time.perf_counter() - started
        out[f"floor_{jobs}"] = _export_floor(work, jobs, pixels)
    out["seconds"] = out["export_2"]
    return out


def _audit(work: Path, method: str | None = None) -> dict[str, object]:
    from catalog import Catalog
    from catalog.audit import CHECKS, REGISTRY

    leave_out = [c for c in os.environ.get("SCALE_AUDIT_SKIP", "").split(",") if c]
    checks = [c for c in CHECKS if c not in leave_out]
    full = os.environ.get("SCALE_AUDIT_FULL") == "1" or method is not None
    cpu: dict[str, float] = {}
    for name, check in list(REGISTRY.items()):  # each check's CPU time (all its threads)

        def timed(
            context: object, check: Callable[..., object] = check, name: str = name
        ) -> object:
            started = time.process_time()
            try:
                return check(context)
            finally:
                cpu[name] = round(cpu.get(name, 0.0) + time.process_time() - started, 2)

        REGISTRY[name] = timed  # type: ignore[assignment]
    catalog = Catalog.open(work / "catalog.db")
    started = time.perf_counter()
    scorer = method or "deskew-mlp"
    report = catalog.audit(dataset="scaled", checks=checks, full=full, method=scorer)  # type: ignore[arg-type]
    summary = report.summary
    return {
        "seconds": time.perf_counter() - started,
        "checks": checks,
        "full": full,
        "method": scorer,
        "findings": report.counts(),
        "per_check": report.seconds,
        "per_check_cpu": cpu,
        "near_duplicates": summary.get("near-duplicates", {}),
        "label_errors_fitted_on": summary.get("label-errors", {})
        .get("scaled", {})
        .get("fitted_on"),
        "reuse": {c: summary.get(c, {}).get("scaled", {}).get("reuse") for c in summary},
        "identity": summary.get("identity", {}).get("scaled", {}),
    }


def step_audit(work: Path) -> dict[str, object]:
    return _audit(work)


def step_incremental(work: Path) -> dict[str, object]:
    """Ingest ``EXTRA`` more images (a new split), then audit again."""
    from catalog import Catalog

    catalog = Catalog.open(work / "catalog.db")
    started = time.perf_counter()
    catalog.ingest(work / "extra", dataset="scaled")
    added = time.perf_counter() - started
    catalog.close()
    return _audit(work) | {"ingest_extra_seconds": added}


STEPS: dict[str, Callable[[Path], dict[str, object]]] = {
    "ingest": step_ingest,
    "count": step_count,
    "arrays": step_arrays,
    "export": step_export,
    "audit": step_audit,
    # the label-error scorers side by side, each a full audit (nothing kept reused):
    # the default and the one before it (steps audit-deskew-mlp,audit-mlp)
    "audit-deskew-mlp": lambda work: _audit(work, "deskew-mlp"),
    "audit-mlp": lambda work: _audit(work, "mlp"),
    "incremental": step_incremental,
}


def peak_rss_mb() -> int:
    """This process's peak RSS in MB.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so a step started by a
    parent that held 1.6 GB of synthesized pixels would report the parent's peak as its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure(name: str, fn: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Run ``fn`` and add CPU time, peak RSS and the load average."""
    load_before = os.getloadavg()[0]
    cpu = time.process_time()
    result = fn()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result | {
        "step": name,
        "cpu_seconds": time.process_time() - cpu + children.ru_utime + children.ru_stime,
        "rss_mb": peak_rss_mb(),
        "child_rss_mb": round(children.ru_maxrss / 1024),
        "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def run_scale(bench: Path, mnist: Path, work: Path, n: int, steps: list[str]) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    saved = work / f"scale-{n}.json"
    # Steps of an earlier run on the same data are kept; the ones run now replace theirs.
    results: dict[str, object] = json.loads(saved.read_text()) if saved.exists() else {"n": n}
    if "synthesize" in steps or "synthesize" not in results:
        print(f"synthesizing {n:,} images ...", file=sys.stderr, flush=True)
        results["synthesize"] = measure("synthesize", lambda: synthesize(mnist, work, n))
    for name in (s for s in steps if s != "synthesize"):
        print(f"running {name} at {n:,} ...", file=sys.stderr, flush=True)
        command = [sys.executable, str(bench), "--scale-step", name, "--work", str(work)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"step {name} failed:\n{done.stderr}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
        saved.write_text(json.dumps(results, indent=1))  # each step kept as it ends
    saved.write_text(json.dumps(results, indent=1))
    return results


def run_step(name: str, work: Path) -> None:
    print(json.dumps(measure(name, lambda: STEPS[name](work))))


def plot(folder: Path, out: Path) -> None:
    """Time and peak RSS of each step against N, from every ``scale-*.json`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from catalog.audit import CHECKS

    runs = sorted(
        (json.loads(p.read_text()) for p in folder.glob("scale-*.json")), key=lambda r: r["n"]
    )
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for step in ("ingest", "export", "audit", "incremental"):
        points = [(r["n"], r[step]) for r in runs if step in r]
        if not points:
            continue
        ns = [p[0] / 1000 for p in points]
        (line,) = left.plot(ns, [float(p[1]["seconds"]) for p in points], "o-", label=step)
        left.plot(
            ns, [float(p[1]["cpu_seconds"]) for p in points], "x--", color=line.get_color(),
            label=f"{step} (CPU)",
        )  # fmt: skip
        right.plot(ns, [float(p[1]["rss_mb"]) for p in points], "o-", label=step)
    left.set(
        xlabel="images (thousands)", ylabel="seconds", title="time: wall (solid), CPU (dashed)"
    )
    right.set(xlabel="images (thousands)", ylabel="peak RSS (MB)", title="memory")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    loads = ", ".join(
        f"{r['n'] // 1000}k: load {r['audit']['load'][0]:g}-{r['audit']['load'][1]:g}"
        for r in runs
        if "audit" in r
    )
    title = f"mnist-catalog on a 2-core machine shared with other work (audit {loads})"
    skipped = {
        f"{r['n'] // 1000}k": [c for c in CHECKS if c not in r["audit"].get("checks", CHECKS)]
        for r in runs
        if "audit" in r
    }
    if any(skipped.values()):
        title += "\naudit " + ", ".join(
            f"{n}: without {', '.join(c)}" if c else f"{n}: every check" for n, c in skipped.items()
        )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
