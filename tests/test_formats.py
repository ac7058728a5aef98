"""Every distribution of the same data ingests to identical pixels and labels."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from builders import (
    random_digits,
    write_idx_pair,
    write_image_folder,
    write_npz,
    write_pickle_gz,
)

from catalog import Catalog

Arrays = dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]


def build_sources(root: Path, data: Arrays) -> dict[str, Path]:
    """IDX, the classic float pickle (train split 50k/10k as train/val), npz, PNG folder."""
    train_x, train_y = data["train"]
    test_x, test_y = data["test"]
    cut = len(train_x) * 5 // 6
    write_idx_pair(root / "idx", "train", train_x, train_y)
    write_idx_pair(root / "idx", "t10k", test_x, test_y)
    pickled = write_pickle_gz(
        root / "mnist.pkl.gz",
        {
            "train": (train_x[:cut], train_y[:cut]),
            "val": (train_x[cut:], train_y[cut:]),
            "test": (test_x, test_y),
        },
        scale=256,
    )
    npz = write_npz(root / "mnist.npz", train_x, train_y, test_x, test_y)
    folder = write_image_folder(root / "png", data, layout="classic", ext="png")
    return {"idx": root / "idx", "pickle": pickled, "npz": npz, "png": folder}


def assert_same(catalog: Catalog, name: str, data: Arrays, pickle_layout: bool = False) -> None:
    train_x, train_y = data["train"]
    if pickle_layout:
        x1, y1 = catalog.select(dataset=name, split="train").arrays()
        x2, y2 = catalog.select(dataset=name, split="val").arrays()
        x, y = np.concatenate([x1, x2]), np.concatenate([y1, y2])
    else:
        x, y = catalog.select(dataset=name, split="train").arrays()
    assert np.array_equal(x, train_x)
    assert np.array_equal(y, train_y)
    tx, ty = catalog.select(dataset=name, split="test").arrays()
    assert np.array_equal(tx, data["test"][0])
    assert np.array_equal(ty, data["test"][1])


def ingest_all(catalog: Catalog, sources: dict[str, Path], data: Arrays) -> None:
    for kind, path in sources.items():
        result = catalog.ingest(path, dataset=kind)
        assert result.format.split("/")[0] == ("folder" if kind == "png" else kind)
        assert_same(catalog, kind, data, pickle_layout=kind == "pickle")


def test_small_data_in_every_format(catalog: Catalog, tmp_path: Path) -> None:
    x, y = random_digits(360, seed=8)
    data: Arrays = {"train": (x[:300], y[:300]), "test": (x[300:], y[300:])}
    ingest_all(catalog, build_sources(tmp_path, data), data)
    [pickled] = [d for d in catalog.datasets() if d.name == "pickle"]
    assert "256" in (pickled.sources[0]["note"] or "")


@pytest.fixture(scope="session")
def mnist_sources(
    mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Path], Arrays]:
    data: Arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        raw = gzip.decompress((mnist_dir / f"{prefix}-images-idx3-ubyte.gz").read_bytes())
        labels = gzip.decompress((mnist_dir / f"{prefix}-labels-idx1-ubyte.gz").read_bytes())
        data[split] = (
            np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28),
            np.frombuffer(labels, np.uint8, offset=8).astype(np.int64),
        )
    root = tmp_path_factory.mktemp("formats")
    sources = build_sources(root, data)
    sources["idx"] = mnist_dir
    return sources, data


@pytest.mark.mnist
@pytest.mark.slow
def test_real_mnist_in_every_format(
    catalog: Catalog, mnist_sources: tuple[dict[str, Path], Arrays]
) -> None:
    sources, data = mnist_sources
    ingest_all(catalog, sources, data)
    summaries = {d.name: d for d in catalog.datasets()}
    assert summaries["idx"].genuine == "mnist"
    assert summaries["pickle"].splits == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert summaries["npz"].splits == summaries["png"].splits == {"train": 60_000, "test": 10_000}
