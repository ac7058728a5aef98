"""The real MNIST, written in every family format that can carry it, ingests
identically to the IDX ingest: same pixels, labels and image digests per split.

This is a property of the readers, the same on every backend, and it moves
350,000 images: it runs on SQLite only (the backends are covered by the
smaller tests of test_source_family.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import write_npz
from family_builders import emnist_members, mapping_text, write_csv, write_parquet

from catalog import Catalog
from catalog.sources.idx import read_idx

pytestmark = pytest.mark.mnist


def _mnist_arrays(mnist_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out: dict[str, list[list[np.ndarray]]] = {}
    for batch in read_idx(mnist_dir).batches:
        parts = out.setdefault(batch.split, [[], []])
        parts[0].append(batch.pixels)
        parts[1].append(batch.labels)
    return {s: (np.concatenate(p[0]), np.concatenate(p[1])) for s, p in out.items()}


def _write_all(mnist_dir: Path, root: Path) -> dict[str, Path]:
    arrays = _mnist_arrays(mnist_dir)
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    write_csv(root / "csv" / "mnist_train.csv", x_train, y_train, header="none")
    write_csv(root / "csv" / "mnist_test.csv", x_test, y_test, header="none")
    write_parquet(root / "parquet" / "train-00000-of-00001.parquet", x_train, y_train)
    write_parquet(root / "parquet" / "test-00000-of-00001.parquet", x_test, y_test)
    npz = write_npz(root / "mnist.npz", x_train, y_train, x_test, y_test)
    emnist = root / "emnist"
    emnist.mkdir()
    members = emnist_members("mnist", {"train": (x_train, y_train), "test": (x_test, y_test)})
    for name, data in members.items():
        (emnist / name).write_bytes(data)
    (emnist / "emnist-mnist-mapping.txt").write_text(
        mapping_text({n: (48 + n,) for n in range(10)})
    )
    return {"csv": root / "csv", "parquet": root / "parquet", "npz": npz, "emnist": emnist}


def test_real_mnist_through_every_format_ingests_identically(
    mnist_dir: Path, tmp_path: Path
) -> None:
    sources = _write_all(mnist_dir, tmp_path)
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        catalog.ingest(mnist_dir, dataset="idx")
        expected = {
            split: [
                (r.index, r.label, r.sha256)
                for r in catalog.select(dataset="idx", split=split).rows()
            ]
            for split in ("train", "test")
        }
        for fmt, path in sources.items():
            result = catalog.ingest(path, dataset=fmt)
            assert result.counts == {"train": 60_000, "test": 10_000} or result.counts == {
                "test": 10_000,
                "train": 60_000,
            }, fmt
            for split in ("train", "test"):
                rows = catalog.select(dataset=fmt, split=split).rows()
                assert [(r.index, r.label, r.sha256) for r in rows] == expected[split], (fmt, split)
