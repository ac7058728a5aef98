"""The lean paths pixels and manifests take out of the catalog: the same answers as
the plain way of computing them (blocks, arrays, metadata, manifest fields, tar
members), on both backends."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits
from family_builders import write_csv
from sqlalchemy import select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import ExportedFile
from catalog.db.models.family import ImageMetadata
from catalog.db.models.images import Image
from catalog.export.tarblocks import tar_header, tar_members
from catalog.facts.label_sets import from_names, store_label_set
from catalog.facts.metadata import metadata_of
from catalog.select.filters import dataset_id
from catalog.select.reads import iter_pixel_blocks, load_arrays
from catalog.selection import Selection

HERE = Path(__file__).resolve().parent


@pytest.fixture
def writers(catalog: Catalog, tmp_path: Path) -> Catalog:
    """24 digits from a CSV whose ``writer`` column is empty for every third image,
    with class names that need CSV quoting."""
    pixels, labels = random_digits(24, seed=31)
    writer = ["" if i % 3 == 0 else str(100 + i % 5) for i in range(24)]
    write_csv(
        tmp_path / "src" / "train.csv", pixels[:16], labels[:16], extra={"writer": writer[:16]}
    )
    write_csv(
        tmp_path / "src" / "test.csv", pixels[16:], labels[16:], extra={"writer": writer[16:]}
    )
    catalog.ingest(tmp_path / "src", dataset="writers")
    names = {n: f'digit {n}, "{n}"' if n % 2 else f"digit {n}" for n in range(10)}
    with session_scope(catalog.engine, write=True) as session:
        store_label_set(session, dataset_id(session, "writers"), from_names(names), "test")
    return catalog


def test_blocks_hold_the_selected_rows_in_order(writers: Catalog) -> None:
    selection = Selection(dataset="writers", sample=10, seed=3, order="random")
    with session_scope(writers.engine) as session:
        ids = [
            int(i)
            for i in writers.select(dataset="writers", sample=10, seed=3, order="random").ids()
        ]
        blocks = list(iter_pixel_blocks(session, selection, chunk=4))
        rows = {
            row.id: row
            for row in session.execute(
                select(
                    Image.id,
                    Image.split,
                    Image.index.label("idx"),
                    Image.label,
                    Image.sha256,
                    Image.pixels,
                )
            )
        }
    assert [len(b) for b in blocks] == [4, 4, 2]
    got = np.concatenate([b.ids for b in blocks]).tolist()
    assert got == ids
    for block in blocks:
        for k, image_id in enumerate(block.ids.tolist()):
            row = rows[image_id]
            assert (block.splits[k], int(block.indices[k]), int(block.labels[k])) == (
                row.split, row.idx, row.label,
            )  # fmt: skip
            assert block.sha256[k] == row.sha256
            assert block.pixels[k].tobytes() == bytes(row.pixels)


def test_arrays_are_writable_and_match_the_blocks(writers: Catalog) -> None:
    x, y = writers.select(dataset="writers", split="train").arrays()
    with session_scope(writers.engine) as session:
        blocks = list(iter_pixel_blocks(session, Selection(dataset="writers", splits=("train",))))
    assert np.array_equal(x, np.concatenate([b.pixels for b in blocks]))
    assert np.array_equal(y, np.concatenate([b.labels for b in blocks]))
    assert x.dtype == np.uint8
    assert y.dtype == np.int64
    assert x.shape == (16, 28, 28)
    x[0, 0, 0] = 7  # training code normalises in place
    empty_x, empty_y = writers.select(dataset="writers", split="train", index=(100, 200)).arrays()
    assert (empty_x.shape, empty_y.shape) == ((0, 28, 28), (0,))


def test_arrays_of_unlabeled_images_say_minus_one(catalog: Catalog, tmp_path: Path) -> None:
    pixels, _ = random_digits(5, seed=2)
    write_csv(tmp_path / "k" / "test.csv", pixels, None)
    catalog.ingest(tmp_path / "k", dataset="k")
    with session_scope(catalog.engine) as session:
        _, y = load_arrays(session, Selection(dataset="k"))
    assert y.tolist() == [-1] * 5


def test_metadata_of_any_ids_matches_a_plain_query(writers: Catalog) -> None:
    with session_scope(writers.engine) as session:
        everything: dict[int, dict[str, str]] = {}
        for image_id, key, value in session.execute(
            select(ImageMetadata.image_id, ImageMetadata.key, ImageMetadata.value)
        ):
            everything.setdefault(image_id, {})[key] = value
        ids = sorted(session.scalars(select(Image.id)))
        dense, sparse = ids[2:14], [ids[0], ids[11], ids[-1]]  # range scan / IN list
        for wanted in (dense, sparse, [ids[3]], [ids[0]], []):
            expected = {i: everything[i] for i in wanted if i in everything}
            assert metadata_of(session, wanted) == expected
        assert metadata_of(session, [max(ids) + 1, max(ids) + 50]) == {}
    assert len(everything) == 16  # every third image has no writer
    assert {value["writer"] for value in everything.values()} == {"101", "102", "103", "104", "100"}


@pytest.mark.parametrize("output", ["idx", "webdataset", "folder"])
def test_manifest_quotes_class_names_and_metadata_like_csv(
    writers: Catalog, tmp_path: Path, output: str
) -> None:
    writers.select(dataset="writers").export(tmp_path / "out", output=output)
    text = (tmp_path / "out" / "manifest.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 24
    with session_scope(writers.engine) as session:
        meta = metadata_of(session, list(session.scalars(select(Image.id))))
        by_place = {
            (split, index): meta.get(image_id, {})
            for image_id, split, index in session.execute(
                select(Image.id, Image.split, Image.index)
            )
        }
    for row in rows:
        label = int(row["label"])
        assert row["name"] == (f'digit {label}, "{label}"' if label % 2 else f"digit {label}")
        pairs = by_place[row["split"], int(row["index"])]
        assert row["metadata"] == ";".join(f"{k}={v}" for k, v in sorted(pairs.items()))
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow([row["name"], row["metadata"]])
        assert f",{out.getvalue()}\n" in text  # the fields as csv.writer quotes them
    assert sum(1 for row in rows if row["metadata"] == "") == 8


@pytest.mark.parametrize("sizes", [[0], [1, 511, 512, 513], [250, 1, 140] * 50, [3000, 0, 1024]])
def test_tar_members_are_the_bytes_of_one_header_per_member(
    sizes: list[int], tmp_path: Path
) -> None:
    names = [f"train_{i:06d}.m{i % 3}".encode() for i in range(len(sizes))]
    datas = [os.urandom(size) for size in sizes]
    built = bytes(tar_members(names, datas))
    one_by_one = b"".join(
        tar_header(name, len(data)) + data + b"\0" * (-len(data) % 512)
        for name, data in zip(names, datas, strict=True)
    )
    assert built == one_by_one
    (tmp_path / "t.tar").write_bytes(built + b"\0" * 1024)
    with tarfile.open(tmp_path / "t.tar") as tar:
        read = [(m.name, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    assert read == [(n.decode(), d) for n, d in zip(names, datas, strict=True)]


def test_tar_member_names_past_100_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        tar_members([b"a" * 101], [b""])
    assert bytes(tar_members([], [])) == b""


def test_container_files_are_recorded_with_the_digest_of_their_bytes(
    writers: Catalog, tmp_path: Path
) -> None:
    result = writers.select(dataset="writers").export(
        tmp_path / "wds", output="webdataset", shard_size=5
    )
    assert len(result.files) == 6  # 16 train images in 4 shards, 8 test in 2
    with session_scope(writers.engine) as session:
        digests = dict(
            session.execute(
                select(ExportedFile.path, ExportedFile.sha256).where(
                    ExportedFile.export_id == result.export_id
                )
            ).all()
        )
    assert len(digests) == 6
    for path in result.files:
        assert digests[str(path)] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_export_does_not_import_pandas(
    writers: Catalog, db_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    script = (
        "import sys\n"
        "from catalog import Catalog\n"
        f"Catalog.open({db_url!r}).select().export({str(tmp_path / 'pq')!r}, output='parquet')\n"
        "print('pandas' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "False"
    assert (tmp_path / "pq" / "train.parquet").exists()
