"""The PNG encoder (zlib-ng) and the files an older encoder left in export folders.

PNGs are compressed with zlib-ng since issue 14; before, with the standard zlib at
level 3. Same pixels, other bytes: a re-export into a folder or over parquet files
and shards the old encoder wrote must not report conflicts, and the audit must
stay clean. ``old_encoder`` puts the old deflate back for the first export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image

from catalog import Catalog
from catalog.errors import ExportConflictError
from catalog.export import encoders, pngs
from catalog.export.encoders import PNG_DEFLATE, encode_pngs
from catalog.export.samepixels import png_pixels, same_png


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(60, seed=33)
    write_idx_pair(tmp_path / "src", "train", pixels[:40], labels[:40])
    write_idx_pair(tmp_path / "src", "t10k", pixels[40:], labels[40:])
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def use_old_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """PNGs as the catalog wrote them before zlib-ng: stock zlib, level 3."""
    monkeypatch.setattr(encoders, "_DEFLATE", zlib)
    monkeypatch.setattr(encoders, "PNG_LEVEL", 3)


def file_findings(catalog: Catalog) -> list[str]:
    return [f.code for f in catalog.audit(checks=["files"]).findings if f.check == "files"]


def manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def pillow_pixels(data: bytes) -> npt.NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.mode) == ("PNG", "L")
        return np.asarray(image)


@pytest.fixture(params=["parquet", "webdataset"])
def output(request: pytest.FixtureRequest) -> str:
    """Each container format, skipping parquet where pyarrow is not installed."""
    if request.param == "parquet":
        pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    return str(request.param)


def test_pngs_are_lossless_deterministic_and_read_by_stock_zlib_and_pillow() -> None:
    pixels, _ = random_digits(50, seed=5)
    edge = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    noise = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    block = np.concatenate([pixels, edge, noise])
    first, second = encode_pngs(block), encode_pngs(block.copy())
    assert first == second  # same pixels, same bytes
    for data, image in zip(first, block, strict=True):
        assert np.array_equal(pillow_pixels(data), image)
        assert np.array_equal(png_pixels(data), image)  # type: ignore[arg-type]
    odd = np.arange(7 * 3, dtype=np.uint8).reshape(1, 7, 3)
    assert np.array_equal(pillow_pixels(encode_pngs(odd)[0]), odd[0])
    assert PNG_DEFLATE.startswith(("zlib-ng ", "zlib "))


def test_the_old_encoders_bytes_differ_but_hold_the_same_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pixels, _ = random_digits(20, seed=6)
    new = encode_pngs(pixels)
    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        old = encode_pngs(pixels)
    if PNG_DEFLATE.startswith("zlib "):
        pytest.skip("zlib-ng is not installed: the encoder is the old one")
    assert sum(a != b for a, b in zip(old, new, strict=True)) == 20
    assert all(same_png(data, image) for data, image in zip(old, pixels, strict=True))
    other = pixels[0].copy()
    other[14, 14] ^= 1
    assert not same_png(old[0], other)


def test_png_pixels_reads_pillows_filtered_pngs_and_refuses_damaged_or_colour_ones() -> None:
    pixels, _ = random_digits(1, seed=7)
    buffer = io.BytesIO()
    Image.fromarray(pixels[0]).save(buffer, format="PNG", optimize=True)  # filtered rows
    assert np.array_equal(png_pixels(buffer.getvalue()), pixels[0])  # type: ignore[arg-type]
    data = bytearray(encode_pngs(pixels)[0])
    data[60] ^= 0xFF  # inside IDAT: its CRC no longer matches
    assert png_pixels(bytes(data)) is None
    assert png_pixels(encode_pngs(pixels)[0][:-5]) is None  # no end
    assert png_pixels(b"not a png") is None
    rgb = io.BytesIO()
    Image.fromarray(np.stack([pixels[0]] * 3, axis=-1)).save(rgb, format="PNG")
    assert png_pixels(rgb.getvalue()) is None


def test_a_folder_the_old_encoder_wrote_is_kept_and_audits_clean(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    picked = digits.select(split="test")
    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        picked.export(out, jobs=1)
    old = {p: p.read_bytes() for p in out.rglob("*.png")}
    assert len(old) == 20
    assert file_findings(digits) == []
    again = picked.export(out, jobs=1)  # no --overwrite
    assert (again.written, again.skipped) == (0, 20)
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == old  # kept as they were
    assert file_findings(digits) == []
    for line in manifest(out):
        assert line["file_sha256"] == hashlib.sha256((out / line["path"]).read_bytes()).hexdigest()
    # A file of other pixels is still in the way.
    victim = min(old)
    pixels = pillow_pixels(old[victim]).copy()
    pixels[0, 0] ^= 1
    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        victim.write_bytes(encode_pngs(pixels[np.newaxis])[0])
    with pytest.raises(ExportConflictError, match="use --overwrite to replace"):
        picked.export(out, jobs=1)


def container_pngs(path: Path) -> list[bytes]:
    """The PNGs in a parquet file or shard, in order."""
    if path.suffix == ".tar":
        with tarfile.open(path) as tar:
            return [
                tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.name.endswith(".png")
            ]
    import pyarrow.parquet as pq

    images = pq.read_table(path).column("image").combine_chunks()
    return list(images.field("bytes").to_pylist())


def test_containers_the_old_encoder_wrote_are_replaced_without_a_conflict(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    out = tmp_path / "out"
    picked = digits.select()
    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        first = picked.export(out, output=output, shard_size=25)
    old = {p: p.read_bytes() for p in first.files}
    assert file_findings(digits) == []
    again = picked.export(out, output=output, shard_size=25)  # no --overwrite
    assert (again.written, again.skipped) == (60, 0)
    assert again.files == first.files
    if not PNG_DEFLATE.startswith("zlib "):
        assert all(p.read_bytes() != data for p, data in old.items())  # new PNG bytes
    assert file_findings(digits) == []
    # The manifest's digests are those of the PNGs now in the files.
    digests = {line["path"]: line["file_sha256"] for line in manifest(out)}
    for split in ("train", "test"):
        x, _ = digits.select(split=split).arrays()
        pngs_read: list[bytes] = []
        for path in sorted(p for p in first.files if p.name.startswith(split)):
            held = container_pngs(path)
            pngs_read += held
            listed = sorted(v for k, v in digests.items() if k.startswith(f"{path.name}#"))
            assert listed == sorted(hashlib.sha256(png).hexdigest() for png in held)
        assert len(pngs_read) == len(x)
        for png, image in zip(pngs_read, x, strict=True):
            assert np.array_equal(pillow_pixels(png), image)
    # A run without change skips them.
    assert picked.export(out, output=output, shard_size=25).skipped == 60


def one_pixel_off(pixels: npt.NDArray[np.uint8]) -> pngs.Encoded:
    """PNGs of ``pixels`` with the first image's first pixel changed (module-level:
    the encoding workers unpickle it by name)."""
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    written = encode_pngs(changed)
    return written, pngs.sha256_hex(written)


def test_a_container_of_other_pixels_is_still_a_conflict(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    out = tmp_path / "out"
    picked = digits.select(split="test")

    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        patched.setattr(pngs, "encode_with_digests", one_pixel_off)
        picked.export(out, output=output)
    with pytest.raises(ExportConflictError, match="use --overwrite to replace"):
        picked.export(out, output=output)


def test_a_container_of_the_same_pixels_but_another_label_is_still_a_conflict(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    out = tmp_path / "out"
    picked = digits.select(split="test")
    with monkeypatch.context() as patched:
        use_old_encoder(patched)
        first = picked.export(out, output=output)
    old = {p: p.read_bytes() for p in first.files}
    digits.relabel("test:3", 9 if digits.image("test", 3)[0].label != 9 else 8)
    with pytest.raises(ExportConflictError, match="use --overwrite to replace"):
        picked.export(out, output=output)
    assert {p: p.read_bytes() for p in first.files} == old  # nothing replaced
