"""Audit: planted problems are found, each one, and nothing else; real MNIST is clean."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from builders import write_idx_pair
from PIL import Image
from typer.testing import CliRunner

from catalog import Catalog
from catalog.audit import CHECKS, REGISTRY, AuditReport, Finding, robust_z
from catalog.cli import app

PER_CLASS_TRAIN, PER_CLASS_TEST = 40, 10


def class_digits(per_class: int, seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Digit-like images whose label is learnable: each class has its own three
    strokes, and each image moves their ends by up to 1.5 pixels (enough that no
    two are near-duplicates, little enough that classes do not overlap)."""
    size, steps = 28, 30
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(10):
        shape = np.random.default_rng(1000 + label).uniform(6, 22, (3, 2, 2))
        for _ in range(per_class):
            ends = shape + rng.uniform(-1.5, 1.5, shape.shape)
            canvas = np.zeros((size + 2, size + 2))
            t = np.linspace(0, 1, steps)[:, None]
            for start, end in ends:
                points = np.rint(start + (end - start) * t).astype(int) + 1
                np.add.at(canvas, (points[:, 0], points[:, 1]), 1.0)
            blurred = sum(
                canvas[1 + dy : size + 1 + dy, 1 + dx : size + 1 + dx]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            )
            images.append(np.clip(np.asarray(blurred) / np.max(blurred) * 400, 0, 255))
            labels.append(label)
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def problems_by_code(report: AuditReport) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for finding in report.problems("warning"):
        out.setdefault(finding.code, []).append(finding)
    return out


def keys(finding: Finding) -> set[tuple[str, int]]:
    return {(ref.split, ref.index) for ref in finding.images}


@pytest.fixture
def planted(catalog: Catalog, tmp_path: Path) -> tuple[Catalog, Path]:
    train_x, train_y = class_digits(PER_CLASS_TRAIN, seed=1)
    test_x, test_y = class_digits(PER_CLASS_TEST, seed=2)
    # 1. test:7 is a copy of train:5 with another label (leak + label conflict)
    test_x[7] = train_x[5]
    test_y[7] = (train_y[5] + 1) % 10
    # 2. test:3 is blank
    test_x[3] = 0
    # 3. train:10 is inverted
    train_x[10] = 255 - train_x[10]
    # 4. train:123 is mislabeled (its pixels are a 3's, its label says 8)
    assert train_y[123] == 3
    train_y[123] = 8
    write_idx_pair(tmp_path / "src", "train", train_x, train_y)
    write_idx_pair(tmp_path / "src", "t10k", test_x, test_y)
    catalog.ingest(tmp_path / "src", dataset="planted")
    out = tmp_path / "export"
    catalog.select(split="test").export(out, jobs=1)
    # 5. an exported file edited, one deleted, one foreign file added
    edited = out / "test" / f"000020_{test_y[20]}.png"
    buffer = io.BytesIO()
    Image.fromarray(255 - test_x[20]).save(buffer, format="PNG")
    edited.write_bytes(buffer.getvalue())
    (out / "test" / f"000030_{test_y[30]}.png").unlink()
    (out / "test" / "stray.png").write_bytes(buffer.getvalue())
    return catalog, out


def test_planted_problems_are_each_found_and_nothing_else(planted: tuple[Catalog, Path]) -> None:
    catalog, out = planted
    report = catalog.audit()
    found = problems_by_code(report)
    assert set(found) == {
        "leak-across-splits", "label-conflict", "blank", "inverted", "likely-label-error",
        "changed", "pixels-differ", "missing", "unknown-file",
    }  # fmt: skip
    [leak] = found["leak-across-splits"]
    assert keys(leak) == {("train", 5), ("test", 7)}
    assert leak.severity == "error"
    [conflict] = found["label-conflict"]
    assert keys(conflict) == {("train", 5), ("test", 7)}
    assert keys(found["blank"][0]) == {("test", 3)}
    assert keys(found["inverted"][0]) == {("train", 10)}
    suspects = {k for f in found["likely-label-error"] for k in keys(f)}
    assert ("train", 123) in suspects
    # the only other suspects are the two halves of the planted conflicting copy
    assert suspects <= {("train", 123), ("train", 5), ("test", 7)}
    [mislabeled] = [f for f in found["likely-label-error"] if keys(f) == {("train", 123)}]
    assert mislabeled.details["given"] == 8
    assert mislabeled.details["suggested"] == 3
    assert keys(found["changed"][0]) == {("test", 20)}
    assert keys(found["pixels-differ"][0]) == {("test", 20)}
    assert keys(found["missing"][0]) == {("test", 30)}
    assert found["unknown-file"][0].details["paths"] == [str(out / "test" / "stray.png")]
    assert report.summary["exact-duplicates"]["planted"]["across_split_groups"] == 1


def test_clean_data_has_no_problems(catalog: Catalog, tmp_path: Path) -> None:
    x, y = class_digits(PER_CLASS_TRAIN, seed=3)
    tx, ty = class_digits(PER_CLASS_TEST, seed=4)
    write_idx_pair(tmp_path / "src", "train", x, y)
    write_idx_pair(tmp_path / "src", "t10k", tx, ty)
    catalog.ingest(tmp_path / "src", dataset="clean")
    report = catalog.audit()
    assert report.problems("warning") == []
    assert report.worst == "info"


def test_near_duplicates_across_splits_are_reported(catalog: Catalog, tmp_path: Path) -> None:
    x, y = class_digits(PER_CLASS_TRAIN, seed=5)
    tx, ty = class_digits(PER_CLASS_TEST, seed=6)
    tx[0] = np.roll(x[17], 1, axis=1)  # a copy shifted one pixel down
    ty[0] = y[17]
    write_idx_pair(tmp_path / "src", "train", x, y)
    write_idx_pair(tmp_path / "src", "t10k", tx, ty)
    catalog.ingest(tmp_path / "src", dataset="near")
    report = catalog.audit(checks=["near-duplicates"])
    [pair] = report.problems("warning")
    assert pair.code == "near-duplicate-across-splits"
    assert keys(pair) == {("train", 17), ("test", 0)}


def test_audit_cli_json_html_and_exit_codes(
    planted: tuple[Catalog, Path], db_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["--db", db_url, "audit", "--json", "--html", str(page)])
    assert result.exit_code == 1  # errors found
    data = json.loads(result.stdout)
    assert data["version"] == 1
    assert set(data) >= {"datasets", "checks", "counts", "summary", "findings"}
    assert {f["code"] for f in data["findings"]} >= {"leak-across-splits", "blank", "missing"}
    text = page.read_text()
    assert text.count("data:image/png;base64,") >= 5
    strict = runner.invoke(app, ["--db", db_url, "audit", "--check", "balance", "--strict"])
    assert strict.exit_code == 0  # balanced: info only
    bad = runner.invoke(app, ["--db", db_url, "audit", "--check", "colour"])
    assert bad.exit_code == 1
    assert "Unknown check 'colour'" in bad.stderr


def test_robust_z_ignores_a_zero_spread() -> None:
    assert robust_z(np.ones(5)).tolist() == [0.0] * 5


@pytest.mark.mnist
@pytest.mark.slow
def test_real_mnist_duplicates_match_an_independent_count(
    mnist_catalog: Catalog, mnist_dir: Path
) -> None:
    report = mnist_catalog.audit(checks=["identity", "balance", "exact-duplicates"])
    # Independent count: hash the IDX bytes directly, 784 at a time.
    splits_of: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        raw = gzip.decompress((mnist_dir / f"{prefix}-images-idx3-ubyte.gz").read_bytes())[16:]
        for i in range(0, len(raw), 784):
            digest = hashlib.sha256(raw[i : i + 784]).hexdigest()
            splits_of.setdefault(digest, set()).add(split)
            counts[digest] = counts.get(digest, 0) + 1
    groups = sum(1 for n in counts.values() if n > 1)
    across = sum(1 for d, n in counts.items() if n > 1 and len(splits_of[d]) > 1)
    summary = report.summary["exact-duplicates"]["mnist"]
    assert (summary["groups"], summary["across_split_groups"]) == (groups, across)
    identity = [f for f in report.findings if f.check == "identity"]
    assert {f.code for f in identity} == {"genuine-sources", "matches-known"}
    assert all(f.details.get("content_identical", True) for f in identity)
    assert report.problems("warning") == []


def test_html_report_renders_its_contact_sheets_in_headless_chromium(
    planted: tuple[Catalog, Path], tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine")
    catalog, _ = planted
    page = tmp_path / "report.html"
    page.write_text(catalog.audit_html(catalog.audit()), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000",
            f"--screenshot={shot}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as picture:
        gray = np.asarray(picture.convert("L"))
    # The digits are dark ink on light paper: a page of text alone has far fewer
    # near-black pixels than one showing the sheets of digits.
    assert (gray < 60).mean() > 0.01


def test_audit_of_one_split_reports_only_that_split(planted: tuple[Catalog, Path]) -> None:
    catalog, _ = planted
    report = catalog.audit(
        splits=["test"], checks=["exact-duplicates", "odd-images", "label-errors"]
    )
    assert {ref.split for f in report.findings for ref in f.images} == {"test"}
    found = problems_by_code(report)
    assert keys(found["blank"][0]) == {("test", 3)}
    assert "inverted" not in found  # train:10 is outside the audit
    assert "leak-across-splits" not in found  # its train half is outside too
    ranking = report.summary["label-errors"]["planted"]["ranking"]
    assert list(ranking) == ["test"]


def test_every_check_is_registered_once() -> None:
    """The registry runs exactly the checks reports list."""
    assert sorted(REGISTRY) == sorted(CHECKS)
