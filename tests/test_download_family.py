"""Downloading the rest of the family by name, from mirrors on 127.0.0.1, then ingesting."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from builders import idx_bytes, random_digits
from family_builders import emnist_members, mapping_text, write_emnist_zip
from test_download import Serve, Site, serve  # noqa: F401  (the fixture)

from catalog import Catalog
from catalog.sources.download import download_dataset
from catalog.sources.fingerprints import KNOWN_DATASETS, KnownDataset, KnownFile, identify_file

X, Y = random_digits(9, seed=41)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _patch(monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes]) -> None:
    """Make ``name`` a known dataset whose published files are ``files``."""
    known = tuple(
        KnownFile(name, file, "train", "data", len(data), _md5(data))
        for file, data in files.items()
    )
    real = KNOWN_DATASETS[name]
    monkeypatch.setitem(KNOWN_DATASETS, name, KnownDataset(name, real.title, real.mirrors, known))


def test_every_family_member_has_published_checksums_and_a_mirror() -> None:
    for name in ("mnist", "fashion-mnist", "kmnist", "k49", "qmnist", "emnist"):
        dataset = KNOWN_DATASETS[name]
        assert dataset.mirrors
        assert all(len(f.gz_md5) == 32 for f in dataset.files)
    assert identify_file(gz_md5="58c8d27c78d21e728a6bc7b3cc06412e").name == "gzip.zip"  # type: ignore[union-attr]
    assert identify_file(gz_md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d").dataset == "fashion-mnist"  # type: ignore[union-attr]


def test_qmnist_downloads_and_ingests_with_writer_metadata(
    tmp_path: Path,
    serve: Serve,  # noqa: F811 - the fixture imported from test_download
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
) -> None:
    table = np.zeros((9, 8), dtype=np.int32)
    table[:, 0], table[:, 2] = Y, 500 + np.arange(9) % 2
    files = {
        "qmnist-train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(X), mtime=0),
        "qmnist-train-labels-idx2-int.gz": gzip.compress(idx_bytes(table), mtime=0),
    }
    _patch(monkeypatch, "qmnist", files)
    url = serve(Site(files))
    paths = download_dataset("qmnist", cache_dir=tmp_path, mirrors=[url])
    with Catalog.open(db_url) as catalog:
        result = catalog.ingest(paths[0].parent)
        assert result.dataset == "qmnist"
        assert all(result.genuine.values())
        x, y = catalog.select(dataset="qmnist").arrays()
    assert np.array_equal(x, X)
    assert np.array_equal(y, Y)


def test_emnist_zip_downloads_then_one_split_ingests(
    tmp_path: Path,
    serve: Serve,  # noqa: F811 - the fixture imported from test_download
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
) -> None:
    letters = Y % 26 + 1
    members = emnist_members("letters", {"train": (X, letters)})
    mapping = mapping_text({n: (64 + n, 96 + n) for n in range(1, 27)})
    archive = write_emnist_zip(tmp_path / "gzip.zip", {"letters": (members, mapping)})
    files = {"gzip.zip": archive.read_bytes()}
    _patch(monkeypatch, "emnist", files)
    url = serve(Site(files))
    (zipped,) = download_dataset("emnist", cache_dir=tmp_path / "cache", mirrors=[url])
    with Catalog.open(db_url) as catalog:
        result = catalog.ingest(zipped, subset="letters")
        assert result.dataset == "emnist-letters"
        assert result.genuine[str(zipped.resolve())] == "emnist/gzip.zip"
        x, y = catalog.select(dataset="emnist-letters").arrays()
    assert np.array_equal(x, X)
    assert np.array_equal(y, letters)
