"""Training-ready outputs: IDX, npz, parquet and WebDataset shards, each read back
by a reader we did not write (gzip + numpy, numpy.load, pyarrow, tarfile,
Hugging Face datasets), recorded like folder exports and checked by the audit."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import Export, ExportedFile
from catalog.errors import ExportConflictError, ExportError, MissingExtraError, SelectionError
from catalog.export.atomic import TEMP_MARK

OUTPUTS = ["idx", "npz", "parquet", "webdataset"]


@pytest.fixture(params=OUTPUTS)
def output(request: pytest.FixtureRequest) -> str:
    """Each output format, skipping parquet where pyarrow is not installed."""
    if request.param == "parquet":
        pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    return str(request.param)


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(60, seed=14)
    write_idx_pair(tmp_path / "src", "train", pixels[:40], labels[:40])
    write_idx_pair(tmp_path / "src", "t10k", pixels[40:], labels[40:])
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def idx_array(path: Path) -> npt.NDArray[np.uint8]:
    """An IDX file read with gzip and numpy alone: magic, dims, then the bytes."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def png_pixels(data: bytes) -> npt.NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_idx_round_trips_through_numpy_and_ingest(digits: Catalog, tmp_path: Path) -> None:
    picked = digits.select(labels=[3, 5, 7])
    result = picked.export(tmp_path / "out", output="idx")
    names = sorted(p.name for p in result.files)
    assert names == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    ]  # fmt: skip
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = digits.select(split=split, labels=[3, 5, 7]).arrays()
        assert len(x) > 0
        images = idx_array(tmp_path / "out" / f"{prefix}-images-idx3-ubyte.gz")
        labels = idx_array(tmp_path / "out" / f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == x.shape
        assert np.array_equal(images, x)
        assert np.array_equal(labels, y)
    # The catalog's own ingest reads them back as the same images.
    digits.ingest(tmp_path / "out", dataset="again")
    for split in ("train", "test"):
        x, y = digits.select(dataset="digits", split=split, labels=[3, 5, 7]).arrays()
        x2, y2 = digits.select(dataset="again", split=split).arrays()
        assert np.array_equal(x, x2)
        assert np.array_equal(y, y2)


def test_npz_is_keras_mnist_layout(digits: Catalog, tmp_path: Path) -> None:
    result = digits.select().export(tmp_path / "out", output="npz")
    assert [p.name for p in result.files] == ["digits.npz"]
    with np.load(tmp_path / "out" / "digits.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["x_test", "x_train", "y_test", "y_train"]
        for split in ("train", "test"):
            x, y = digits.select(split=split).arrays()
            assert data[f"x_{split}"].dtype == np.uint8
            assert data[f"y_{split}"].dtype == np.uint8
            assert np.array_equal(data[f"x_{split}"], x)
            assert np.array_equal(data[f"y_{split}"], y)


def test_parquet_is_the_hugging_face_layout(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")
    from catalog.export.formats import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP", 16)
    result = digits.select().export(tmp_path / "out", output="parquet")
    assert sorted(p.name for p in result.files) == ["test.parquet", "train.parquet"]
    x, y = digits.select(split="train").arrays()
    file = pq.ParquetFile(tmp_path / "out" / "train.parquet")
    groups = [file.metadata.row_group(i).num_rows for i in range(file.metadata.num_row_groups)]
    assert groups == [16, 16, 8]
    meta = json.loads(file.schema_arrow.metadata[b"huggingface"])
    assert meta["info"]["features"] == {
        "image": {"_type": "Image"},
        "label": {"names": [str(n) for n in range(10)], "_type": "ClassLabel"},
    }
    table = file.read().to_pylist()
    assert [row["label"] for row in table] == y.tolist()
    assert all(row["image"]["path"] is None for row in table)
    decoded = np.stack([png_pixels(row["image"]["bytes"]) for row in table])
    assert np.array_equal(decoded, x)


def test_parquet_loads_with_hugging_face_datasets(digits: Catalog, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    digits.select(split="test").export(tmp_path / "out", output="parquet")
    loaded = datasets.load_dataset(
        "parquet", data_files={"test": str(tmp_path / "out" / "test.parquet")}, split="test",
        cache_dir=str(tmp_path / "hf-cache"),
    )  # fmt: skip
    assert loaded.features["label"].names == [str(n) for n in range(10)]
    x, y = digits.select(split="test").arrays()
    assert loaded["label"] == y.tolist()
    assert np.array_equal(np.stack([np.asarray(im) for im in loaded["image"]]), x)


def test_webdataset_shards_round_trip_through_tarfile(digits: Catalog, tmp_path: Path) -> None:
    result = digits.select().export(tmp_path / "out", output="webdataset", shard_size=16)
    assert sorted(p.name for p in result.files) == [
        "test-000000.tar", "test-000001.tar",
        "train-000000.tar", "train-000001.tar", "train-000002.tar",
    ]  # fmt: skip
    index = {row["path"]: row for row in manifest(tmp_path / "out")}
    for split in ("train", "test"):
        rows = digits.select(split=split).rows()
        x, _ = digits.select(split=split).arrays()
        seen = 0
        for shard in sorted((tmp_path / "out").glob(f"{split}-*.tar")):
            with tarfile.open(shard) as tar:
                members = tar.getmembers()
                assert all(m.isfile() and m.mode == 0o644 for m in members)
                assert len(members) == 3 * min(16, len(rows) - seen)
                for png, cls, meta in zip(members[::3], members[1::3], members[2::3], strict=True):
                    row = rows[seen]
                    key = f"{split}_{row.index:06d}"
                    assert [png.name, cls.name, meta.name] == [
                        f"{key}.png",
                        f"{key}.cls",
                        f"{key}.json",
                    ]
                    data = tar.extractfile(png).read()  # type: ignore[union-attr]
                    assert np.array_equal(png_pixels(data), x[seen])
                    assert tar.extractfile(cls).read() == str(row.label).encode()  # type: ignore[union-attr]
                    info = json.loads(tar.extractfile(meta).read())  # type: ignore[union-attr]
                    assert info == {
                        "dataset": "digits", "split": split, "index": row.index,
                        "label": row.label, "sha256": row.sha256,
                    }  # fmt: skip
                    # The manifest says which shard holds it, and the PNG's digest.
                    line = index[f"{shard.name}#{key}"]
                    assert (line["split"], int(line["index"])) == (split, row.index)
                    assert line["file_sha256"] == hashlib.sha256(data).hexdigest()
                    seen += 1
        assert seen == len(rows)


@pytest.mark.parametrize("output", ["idx", "npz"])
def test_random_order_keeps_each_split_in_selection_order(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    picked = digits.select(sample=30, seed=3, order="random")
    picked.export(tmp_path / "out", output=output)
    rows = picked.rows()
    assert {r.split for r in rows} == {"train", "test"}
    for split in ("train", "test"):
        expected = [r.index for r in rows if r.split == split]
        if output == "idx":
            prefix = "t10k" if split == "test" else "train"
            x = idx_array(tmp_path / "out" / f"{prefix}-images-idx3-ubyte.gz")
        else:
            x = np.load(tmp_path / "out" / "digits.npz")[f"x_{split}"]
        want = np.stack([digits.image(split, i)[1] for i in expected])
        assert np.array_equal(x, want)
        listed = [int(r["index"]) for r in manifest(tmp_path / "out") if r["split"] == split]
        assert listed == expected


def test_every_file_is_recorded_with_its_digest(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    result = digits.select(split="train").export(tmp_path / "out", output=output, shard_size=25)
    assert result.count == result.written == 40
    with session_scope(digits.engine) as session:
        record = session.get(Export, result.export_id)
        assert record is not None
        assert (record.output, record.count) == (output, 40)
        rows = session.execute(
            select(ExportedFile.path, ExportedFile.sha256, ExportedFile.size, ExportedFile.format)
        ).all()
    on_disk = {str(p) for p in result.files}
    assert {row.path for row in rows} == on_disk
    for row in rows:
        data = Path(row.path).read_bytes()
        assert (row.sha256, row.size) == (hashlib.sha256(data).hexdigest(), len(data))
        assert row.format == ("tar" if output == "webdataset" else output)
    lines = manifest(tmp_path / "out")
    assert sorted(int(r["index"]) for r in lines) == list(range(40))
    assert {r["path"].split("#")[0] for r in lines} <= {p.name for p in result.files}
    assert not list((tmp_path / "out").glob(f".*{TEMP_MARK}*"))


def test_rerun_skips_identical_files_and_refuses_changed_ones(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    picked = digits.select(split="test")
    first = picked.export(tmp_path / "out", output=output)
    again = picked.export(tmp_path / "out", output=output)
    assert (again.written, again.skipped) == (0, 20)
    target = first.files[0]
    target.write_bytes(target.read_bytes() + b"x")
    with pytest.raises(ExportConflictError, match="use --overwrite to replace"):
        picked.export(tmp_path / "out", output=output)
    redone = picked.export(tmp_path / "out", output=output, overwrite=True)
    assert redone.written == 20
    assert not list((tmp_path / "out").glob(f".*{TEMP_MARK}*"))


def test_audit_finds_a_changed_or_missing_container_file(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    result = digits.select().export(tmp_path / "out", output=output)
    assert [f for f in digits.audit(checks=["files"]).findings if f.check == "files"] == []
    changed = result.files[0]
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle
    changed.write_bytes(bytes(data))
    findings = {f.code: f for f in digits.audit(checks=["files"]).findings if f.check == "files"}
    assert set(findings) == {"container-changed"}
    assert findings["container-changed"].severity == "error"
    assert findings["container-changed"].details["paths"] == [str(changed)]
    changed.unlink()
    findings = {f.code: f for f in digits.audit(checks=["files"]).findings if f.check == "files"}
    assert set(findings) == {"missing"}
    assert findings["missing"].details["paths"] == [str(changed)]


def test_a_failure_midway_leaves_no_file_at_a_final_name(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    from catalog.export import container
    from catalog.select.reads import iter_pixel_blocks
    from catalog.select.records import PixelBlock
    from catalog.selection import Selection

    def failing(
        session: Session, selection: Selection, *, ids: npt.NDArray[np.int64] | None = None
    ) -> Iterator[PixelBlock]:
        yield from iter_pixel_blocks(session, selection, chunk=8, ids=ids)
        raise OSError("disk on fire")

    monkeypatch.setattr(container, "iter_pixel_blocks", failing)
    with pytest.raises(OSError, match="disk on fire"):
        digits.select().export(tmp_path / "out", output=output, jobs=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("output", OUTPUTS)
def test_folder_options_are_refused_before_anything_is_written(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    with pytest.raises(SelectionError, match=f"apply to --as folder, not to --as {output}"):
        digits.select().export(tmp_path / "out", output=output, layout="by-label")
    assert not (tmp_path / "out").exists()
    assert digits.exports() == []


def test_shard_size_must_be_positive(digits: Catalog, tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match="--shard-size must be 1 or more, got 0"):
        digits.select().export(tmp_path / "out", output="webdataset", shard_size=0)


def test_parquet_without_pyarrow_is_a_one_line_error_naming_the_extra(
    digits: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match=r'pip install "mnist-catalog\[parquet\]"'):
        digits.select().export(tmp_path / "out", output="parquet")
    assert digits.exports() == []


@pytest.mark.mnist
def test_idx_export_of_mnist_is_mnist(
    mnist_catalog: Catalog, mnist_dir: Path, tmp_path: Path
) -> None:
    """The whole of MNIST exported as IDX decompresses to MNIST's own bytes."""
    mnist_catalog.select().export(tmp_path / "out", output="idx")
    for name in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    ):  # fmt: skip
        ours = gzip.decompress((tmp_path / "out" / name).read_bytes())
        assert ours == gzip.decompress((mnist_dir / name).read_bytes()), name


def test_cli_export_as_webdataset_and_a_bad_combination(db_url: str, tmp_path: Path) -> None:
    from test_cli import TINY, run

    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    out = tmp_path / "out"
    code, stdout, err = run(
        db_url, "export", str(out), "--as", "webdataset", "--shard-size", "2", "--split", "train"
    )
    assert (code, err) == (0, "")
    assert stdout == (
        f"Exported 3 images to {out} as webdataset: 2 files (3 images written, 0 already there); "
        "manifest manifest.csv\n"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.csv", "train-000000.tar", "train-000001.tar",
    ]  # fmt: skip
    code, stdout, _ = run(db_url, "exports", "--json")
    [record] = json.loads(stdout)
    assert (record["output"], record["count"], record["files"]) == ("webdataset", 3, 2)
    code, stdout, err = run(db_url, "export", str(tmp_path / "o2"), "--as", "idx", "--list", "csv")
    assert (code, stdout) == (1, "")
    assert err == "Error: --layout, --format and --list apply to --as folder, not to --as idx\n"
    assert not (tmp_path / "o2").exists()


def test_containers_use_current_labels_and_leave_out_excluded_images(
    digits: Catalog, tmp_path: Path
) -> None:
    digits.relabel("test:3", 9 if digits.image("test", 3)[0].label != 9 else 8)
    digits.exclude("test:5", reason="smudged")
    x, y = digits.select(split="test").arrays()
    assert len(x) == 19
    result = digits.select(split="test").export(tmp_path / "idx", output="idx")
    assert result.left_out == 1
    assert np.array_equal(idx_array(tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz"), y)
    assert np.array_equal(idx_array(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"), x)
    lines = {int(r["index"]): r for r in manifest(tmp_path / "idx")}
    assert 5 not in lines
    assert lines[3]["label"] != lines[3]["original_label"]
    assert lines[3]["decision"] != ""
    digits.select(split="test").export(tmp_path / "wds", output="webdataset")
    with tarfile.open(tmp_path / "wds" / "test-000000.tar") as tar:
        names = tar.getnames()
        assert "test_000005.png" not in names
        cls = tar.extractfile("test_000003.cls").read()  # type: ignore[union-attr]
    assert int(cls) == int(lines[3]["label"])


def test_unlabeled_images_in_each_container(catalog: Catalog, tmp_path: Path) -> None:
    from family_builders import write_csv

    pixels, labels = random_digits(12, seed=5)
    write_csv(tmp_path / "kaggle" / "train.csv", pixels[:8], labels[:8])
    write_csv(tmp_path / "kaggle" / "test.csv", pixels[8:], None)
    catalog.ingest(tmp_path / "kaggle", dataset="kaggle")
    with pytest.raises(ExportError, match="unlabeled images and an IDX label file needs a label"):
        catalog.select().export(tmp_path / "idx", output="idx")
    with pytest.raises(ExportError, match="has unlabeled images or labels past 255"):
        catalog.select().export(tmp_path / "npz", output="npz")
    assert catalog.select(split="train").export(tmp_path / "idx", output="idx").count == 8
    catalog.select(split="test").export(tmp_path / "wds", output="webdataset")
    with tarfile.open(tmp_path / "wds" / "test-000000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("test_000000.json").read())  # type: ignore[union-attr]
    assert not [n for n in names if n.endswith(".cls")]
    assert meta["label"] is None
    if _has("pyarrow"):
        import pyarrow.parquet as pq

        catalog.select(split="test").export(tmp_path / "pq", output="parquet")
        assert pq.read_table(tmp_path / "pq" / "test.parquet")["label"].to_pylist() == [-1] * 4


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
