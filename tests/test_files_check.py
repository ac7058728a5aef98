"""The files check reads exported files in threads, a file at a time through the
hash: findings keep the order of the rows, and a big container file is never held
whole in memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image
from sqlalchemy import update
from sqlalchemy.orm import Session

from catalog import Catalog
from catalog.audit import files
from catalog.db.models.exports import ExportedFile


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(300, seed=21)
    write_idx_pair(tmp_path / "src", "train", pixels, labels)
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def file_findings(catalog: Catalog) -> dict[str, list[str]]:
    report = catalog.audit(checks=["files"])
    return {f.code: f.details["paths"] for f in report.findings if f.check == "files"}


def test_findings_across_many_reader_tasks_keep_their_rows(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "FILES_PER_TASK", 7)  # 300 files: 43 tasks
    out = tmp_path / "out"
    digits.select().export(out)
    assert file_findings(digits) == {}
    pngs = sorted(str(p) for p in out.rglob("*.png"))
    assert len(pngs) == 300
    missing = [pngs[3], pngs[150], pngs[299]]
    for path in missing:
        Path(path).unlink()
    redrawn = [pngs[0], pngs[7], pngs[200]]  # first of a task, first of the next, another
    for path in redrawn:
        pixels = np.asarray(Image.open(path)).copy()
        pixels[0, 0] ^= 0xFF
        Image.fromarray(pixels).save(path)
    found = file_findings(digits)
    assert set(found) == {"missing", "changed", "pixels-differ"}
    assert found["missing"] == missing
    assert found["changed"] == redrawn
    assert found["pixels-differ"] == redrawn


def test_a_big_container_file_is_hashed_in_pieces(digits: Catalog, tmp_path: Path) -> None:
    result = digits.select().export(tmp_path / "out", output="idx")
    big = next(p for p in result.files if "images" in p.name)
    size = 48 * 2**20
    chunk = bytes(range(256)) * 4096  # 1 MB
    hasher = hashlib.sha256()
    with big.open("wb") as handle:
        for _ in range(size // len(chunk)):
            handle.write(chunk)
            hasher.update(chunk)
    with Session(digits.engine) as session:  # recorded as if the export had written it
        session.execute(
            update(ExportedFile)
            .where(ExportedFile.path == str(big))
            .values(sha256=hasher.hexdigest(), size=size)
        )
        session.commit()
    tracemalloc.start()
    try:
        found = file_findings(digits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == {}
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB while checking a 48 MB file"


def test_a_file_recorded_with_a_wrong_size_is_hashed_whole(digits: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    digits.select().export(out)
    first, second = sorted(str(p) for p in out.rglob("*.png"))[:2]
    with Session(digits.engine) as session:  # sizes off by far, either way
        for path, size in ((first, 3), (second, 10**6)):
            session.execute(update(ExportedFile).where(ExportedFile.path == path).values(size=size))
        session.commit()
    assert file_findings(digits) == {}
    Path(first).write_bytes(Path(first).read_bytes() + b"\0")  # grown by a byte
    assert file_findings(digits)["changed"] == [first]
