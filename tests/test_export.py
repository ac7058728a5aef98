"""Export: exact pixels, atomic writes, manifests and lists, and a record of every file."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image
from sqlalchemy import func, select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import ExportedFile
from catalog.errors import ExportConflictError, ExportError
from catalog.export.atomic import TEMP_MARK
from catalog.export.encoders import encode


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(60, seed=21)
    write_idx_pair(tmp_path / "src", "train", pixels[:40], labels[:40])
    write_idx_pair(tmp_path / "src", "t10k", pixels[40:], labels[40:])
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def recorded(catalog: Catalog) -> dict[str, tuple[int, str]]:
    with session_scope(catalog.engine) as session:
        rows = session.execute(select(ExportedFile.path, ExportedFile.size, ExportedFile.sha256))
        return {path: (size, digest) for path, size, digest in rows}


@pytest.mark.parametrize("fmt", ["png", "bmp", "pgm"])
def test_lossless_formats_decode_to_the_catalogs_pixels(
    digits: Catalog, tmp_path: Path, fmt: str
) -> None:
    result = digits.select(split="test").export(tmp_path / "out", fmt=fmt, jobs=1)
    assert result.count == result.written == 20
    for row in digits.select(split="test").rows():
        _, pixels = digits.image("test", row.index)
        path = tmp_path / "out" / "test" / f"{row.index:06d}_{row.label}.{fmt}"
        with Image.open(path) as image:
            assert image.mode == "L"
            assert np.array_equal(np.asarray(image), pixels)


def test_jpg_is_written_only_when_asked_with_its_quality(digits: Catalog, tmp_path: Path) -> None:
    digits.select(split="test", limit=3).export(tmp_path / "out", fmt="jpg", quality=80, jobs=1)
    files = sorted((tmp_path / "out" / "test").iterdir())
    assert [f.suffix for f in files] == [".jpg"] * 3
    _, pixels = digits.image("test", 0)
    assert files[0].read_bytes() == encode(pixels, "jpg", 80)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [("classic", "test/{i:06d}_{l}.png"), ("by-label", "test/{l}/{i:06d}.png"), ("flat", "digits_test_{i:06d}_{l}.png")],
)  # fmt: skip
def test_layouts(digits: Catalog, tmp_path: Path, layout: str, expected: str) -> None:
    digits.select(split="test").export(tmp_path / "out", layout=layout, jobs=1)
    names = {expected.format(i=r.index, l=r.label) for r in digits.select(split="test").rows()}
    on_disk = {
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    }
    assert on_disk == names


def test_every_file_is_recorded_with_its_digest(digits: Catalog, tmp_path: Path) -> None:
    digits.select().export(tmp_path / "out", jobs=2)
    files = recorded(digits)
    assert len(files) == 60
    for path, (size, digest) in files.items():
        data = Path(path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
    [record] = digits.exports()
    assert record["count"] == 60
    assert record["files"] == 60
    assert record["selection"]["dataset"] is None
    assert all(len(r.paths) == 1 for r in digits.select().rows())


def test_manifest_and_lists_match_the_files(digits: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    digits.select().export(out, lists=["caffe", "mxnet", "csv"], jobs=1)
    with (out / "manifest.csv").open() as f:
        manifest = list(csv.DictReader(f))
    assert len(manifest) == 60
    assert {out / m["path"] for m in manifest} == set(out.rglob("*.png"))
    test_rows = [m for m in manifest if m["split"] == "test"]
    caffe = (out / "test.txt").read_text().splitlines()
    assert caffe == [f"{m['path']} {m['label']}" for m in test_rows]
    mxnet = (out / "test.lst").read_text().splitlines()
    assert mxnet == [f"{m['index']}\t{m['label']}\t{m['path']}" for m in test_rows]
    listed = (out / "test.csv").read_text().splitlines()
    assert listed == ["path,label"] + [f"{m['path']},{m['label']}" for m in test_rows]
    for m in manifest:
        assert hashlib.sha256((out / m["path"]).read_bytes()).hexdigest() == m["file_sha256"]
    assert not list(out.rglob(f"*{TEMP_MARK}*"))


def test_rerun_writes_nothing_and_restores_deleted_files(digits: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    digits.select().export(out, jobs=1)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = digits.select().export(out, jobs=1)
    assert (again.written, again.skipped) == (0, 60)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before
    deleted = sorted(before)[:5]
    for path in deleted:
        path.unlink()
    third = digits.select().export(out, jobs=2)
    assert (third.written, third.skipped) == (5, 55)
    changed = {p for p in out.rglob("*.png") if p.stat().st_mtime_ns != before[p]}
    assert changed == set(deleted)


def test_a_changed_file_is_a_conflict_unless_overwrite(digits: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    digits.select().export(out, jobs=1)
    victim = next(iter(sorted(out.rglob("*.png"))))
    victim.write_bytes(b"not the image")
    with pytest.raises(
        ExportConflictError, match=re.escape(f"{victim} already exists and differs")
    ):
        digits.select().export(out, jobs=1)
    assert victim.read_bytes() == b"not the image"
    result = digits.select().export(out, overwrite=True, jobs=1)
    assert result.written == 1
    assert recorded(digits)[str(victim)][1] == hashlib.sha256(victim.read_bytes()).hexdigest()


def test_unwritable_folder_is_a_clear_error(digits: Catalog, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/no-such-export")  # even root cannot create folders here
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    with pytest.raises(ExportError, match=re.escape(f"Cannot create export folder {target}")):
        digits.select().export(target, jobs=1)


def test_a_subfolder_linked_outside_is_refused(digits: Catalog, tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "test").symlink_to(elsewhere)
    with pytest.raises(ExportError, match="outside"):
        digits.select(split="test").export(out, jobs=1)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.mnist
def test_test_set_threes_and_fives_in_the_classic_layout(
    mnist_catalog: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = mnist_catalog.select(split="test", labels=[3, 5]).export(out, lists=["caffe", "mxnet"])
    files = sorted((out / "test").iterdir())
    assert result.count == len(files) == 1010 + 892
    assert sum(f.name.endswith("_3.png") for f in files) == 1010
    assert all(re.fullmatch(r"\d{6}_[35]\.png", f.name) for f in files)
    x, _ = mnist_catalog.select(split="test", labels=[3, 5]).arrays()
    for i, path in enumerate(files):
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image), x[i])
    manifest = (out / "manifest.csv").read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in manifest] == [f"test/{f.name}" for f in files]
    assert len((out / "test.txt").read_text().splitlines()) == 1902
    with session_scope(mnist_catalog.engine) as session:
        paths = set(
            session.scalars(select(ExportedFile.path).where(ExportedFile.path.like(f"{out}%")))
        )
        assert paths == {str(f) for f in files}
        assert (session.scalar(select(func.count()).select_from(ExportedFile)) or 0) >= 1902


def test_a_sampled_export_records_the_ids_it_chose(tiny_catalog: Catalog, tmp_path: Path) -> None:
    selected = tiny_catalog.select(sample=3, seed=5)
    expected = [int(i) for i in selected.ids()]
    selected.export(tmp_path / "out")
    record = tiny_catalog.exports()[0]
    assert record["selection"]["chosen_ids"] == expected
    assert len(expected) == 3
    whole = tiny_catalog.select()
    whole.export(tmp_path / "all")
    assert "chosen_ids" not in tiny_catalog.exports()[0]["selection"]  # nothing sampled
