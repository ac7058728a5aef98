"""Ingest into real catalogs (SQLite file and PostgreSQL schema)."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from sqlalchemy import func, select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.images import Image, Source
from catalog.errors import DatasetConflictError, InvalidNameError, SourceFormatError
from catalog.ingest.transaction import default_dataset_name
from catalog.sources.fingerprints import KNOWN_SPLITS


def image_count(catalog: Catalog) -> int:
    with session_scope(catalog.engine) as session:
        return int(session.scalar(select(func.count()).select_from(Image)) or 0)


def test_tiny_ingest_records_rows_pixels_and_provenance(catalog: Catalog) -> None:
    result = catalog.ingest(Path(__file__).parent / "data" / "tiny", dataset="tiny")
    assert result.counts == {"test": 2, "train": 3}
    assert not result.already_present
    row, pixels = catalog.image("train", 0, dataset="tiny")
    assert row.label == 1
    assert row.sha256 == hashlib.sha256(pixels.tobytes()).hexdigest()
    assert row.sha256 == "e2bf5a30ea4f7901c9c4e6c5343adce6415ac444122567d389dfe3364f671efb"
    [summary] = catalog.datasets()
    assert summary.splits == {"test": 2, "train": 3}
    assert summary.label_counts["train"] == [0, 1, 0, 0, 1, 0, 0, 1, 0, 0]
    assert {s["role"] for s in summary.sources} == {
        "train images", "train labels", "test images", "test labels",
    }  # fmt: skip
    assert summary.genuine is None


def test_same_content_twice_is_reported_and_not_duplicated(tiny_catalog: Catalog) -> None:
    again = tiny_catalog.ingest(Path(__file__).parent / "data" / "tiny", dataset="tiny")
    assert again.already_present
    assert image_count(tiny_catalog) == 5
    with session_scope(tiny_catalog.engine) as session:
        assert session.scalar(select(func.count()).select_from(Source)) == 4


def test_different_content_for_a_present_split_is_a_conflict(
    tiny_catalog: Catalog, tmp_path: Path
) -> None:
    pixels, labels = random_digits(4, seed=3)
    write_idx_pair(tmp_path, "train", pixels, labels)
    with pytest.raises(DatasetConflictError, match="already has images in split"):
        tiny_catalog.ingest(tmp_path, dataset="tiny")
    assert image_count(tiny_catalog) == 5


def test_replace_swaps_the_split_and_its_sources(tiny_catalog: Catalog, tmp_path: Path) -> None:
    pixels, labels = random_digits(4, seed=3)
    write_idx_pair(tmp_path, "train", pixels, labels)
    result = tiny_catalog.ingest(tmp_path, dataset="tiny", replace=True)
    assert result.replaced == ["train"]
    x, y = tiny_catalog.select(dataset="tiny", split="train").arrays()
    assert np.array_equal(x, pixels)
    assert np.array_equal(y, labels)
    assert tiny_catalog.select(dataset="tiny", split="test").count() == 2
    [summary] = tiny_catalog.datasets()
    assert sorted(s["role"] for s in summary.sources) == [
        "test images", "test labels", "train images", "train labels",
    ]  # fmt: skip


def test_failed_ingest_leaves_the_catalog_as_it_was(tiny_catalog: Catalog, tmp_path: Path) -> None:
    pixels, labels = random_digits(5000, seed=4)
    images, _ = write_idx_pair(tmp_path, "train", pixels, labels)
    # Corrupt the gzip near its end: the first batches decode and are inserted,
    # then the stream fails and the whole transaction must roll back.
    data = bytearray(images.read_bytes())
    images.write_bytes(bytes(data[:-40]))
    with pytest.raises(SourceFormatError):
        tiny_catalog.ingest(tmp_path, dataset="other")
    assert image_count(tiny_catalog) == 5
    assert [d.name for d in tiny_catalog.datasets()] == ["tiny"]


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "x" * 65, "-lead", "sp ace"])
def test_unsafe_dataset_names_are_refused(catalog: Catalog, name: str) -> None:
    with pytest.raises(InvalidNameError, match=re.escape(f"Invalid dataset name {name!r}")):
        catalog.ingest(Path(__file__).parent / "data" / "tiny", dataset=name)


def test_default_dataset_names_come_from_the_source() -> None:
    assert default_dataset_name(Path("some/where/mnist.npz")) == "mnist"
    assert default_dataset_name(Path("Fashion MNIST/t10k-images-idx3-ubyte.gz")) == "fashion-mnist"


@pytest.mark.mnist
def test_real_mnist_ingests_exactly(mnist_catalog: Catalog, mnist_dir: Path) -> None:
    [summary] = mnist_catalog.datasets()
    assert summary.genuine == "mnist"
    assert summary.splits == {"test": 10_000, "train": 60_000}
    for known in KNOWN_SPLITS[:2]:
        assert summary.label_counts[known.split] == list(known.label_counts)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        raw = gzip.decompress((mnist_dir / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
        expected = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
        labels = gzip.decompress((mnist_dir / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
        x, y = mnist_catalog.select(split=split).arrays()
        assert np.array_equal(x, expected)
        assert np.array_equal(y, np.frombuffer(labels, dtype=np.uint8, offset=8))
