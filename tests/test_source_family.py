"""Readers of the MNIST family: each decodes exactly the arrays its files hold."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits
from family_builders import (
    emnist_members,
    mapping_text,
    write_csv,
    write_emnist_zip,
    write_kuzushiji,
    write_parquet,
    write_qmnist,
)

from catalog import Catalog
from catalog.ingest.transaction import decode_source
from catalog.sources import UNLABELED, Decoded, detect_format


def collect(decoded: Decoded) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for batch in decoded.batches:
        parts = out.setdefault(batch.split, {"indices": [], "labels": [], "pixels": []})
        parts["indices"].append(batch.indices)
        parts["labels"].append(batch.labels)
        parts["pixels"].append(batch.pixels)
        for key, values in batch.meta.items():
            parts.setdefault(key, []).append(values)
    return {s: {k: np.concatenate(v) for k, v in p.items()} for s, p in out.items()}


@pytest.mark.parametrize("header", ["kaggle", "rxc", "none"])
def test_csv_layouts_decode_exactly(tmp_path: Path, header: str) -> None:
    x, y = random_digits(9, seed=1)
    name = "mnist_train.csv" if header == "none" else "train.csv"
    path = write_csv(tmp_path / name, x, y, header=header)
    assert detect_format(path) == "csv"
    got = collect(decode_source(path))["train"]
    assert np.array_equal(got["pixels"], x)
    assert np.array_equal(got["labels"], y)
    assert got["indices"].tolist() == list(range(9))


def test_kaggle_folder_train_labeled_test_unlabeled_with_extra_columns(tmp_path: Path) -> None:
    x, y = random_digits(5, seed=2)
    write_csv(tmp_path / "train.csv", x, y, extra={"writer": [7, 7, 8, 9, 9]})
    write_csv(tmp_path / "test.csv", x[:3], None)
    decoded = decode_source(tmp_path)
    assert decoded.format == "csv"
    assert decoded.counts == {"test": 3, "train": 5}
    got = collect(decoded)
    assert got["test"]["labels"].tolist() == [UNLABELED] * 3
    assert np.array_equal(got["test"]["pixels"], x[:3])
    assert got["train"]["writer"].tolist() == ["7", "7", "8", "9", "9"]
    assert np.array_equal(got["train"]["pixels"], x)


def test_csv_gzipped_and_non_28_square(tmp_path: Path) -> None:
    x, y = random_digits(4, seed=3, size=16)
    plain = write_csv(tmp_path / "mnist_test.csv", x, y, header="none")
    packed = tmp_path / "gz" / "mnist_test.csv.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    got = collect(decode_source(packed))["test"]
    assert got["pixels"].shape == (4, 16, 16)
    assert np.array_equal(got["pixels"], x)


def test_parquet_hugging_face_layout_with_class_names(tmp_path: Path) -> None:
    x, y = random_digits(12, seed=4)
    names = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", x, y, names, row_group_size=5)
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", x[:4], None)
    decoded = decode_source(tmp_path)
    assert decoded.format == "parquet"
    assert decoded.counts == {"test": 4, "train": 12}
    assert decoded.label_names == dict(enumerate(names))
    got = collect(decoded)
    assert np.array_equal(got["train"]["pixels"], x)
    assert np.array_equal(got["train"]["labels"], y)
    assert got["test"]["labels"].tolist() == [UNLABELED] * 4


def test_emnist_zip_chooses_a_split_and_stores_it_upright(tmp_path: Path) -> None:
    x, y = random_digits(6, seed=5)
    letters = y % 26 + 1
    mapping = mapping_text({n: (64 + n, 96 + n) for n in range(1, 27)})
    digits = mapping_text({n: (48 + n,) for n in range(10)})
    path = write_emnist_zip(
        tmp_path / "gzip.zip",
        {
            "letters": (
                emnist_members("letters", {"train": (x, letters), "test": (x[:2], letters[:2])}),
                mapping,
            ),
            "digits": (emnist_members("digits", {"train": (x, y)}), digits),
        },
    )
    assert detect_format(path) == "emnist"
    with pytest.raises(Exception, match="choose one with --subset"):
        decode_source(path)
    decoded = decode_source(path, "letters")
    assert decoded.dataset == "emnist-letters"
    assert decoded.label_names is not None
    assert decoded.label_names[1] == "A/a"
    got = collect(decoded)
    assert np.array_equal(got["train"]["pixels"], x)  # transposed back
    assert np.array_equal(got["train"]["labels"], letters)
    assert decoded.files[0].uri.endswith("!gzip/emnist-letters-train-labels-idx1-ubyte.gz")


def test_emnist_extracted_files_in_a_folder(tmp_path: Path) -> None:
    x, y = random_digits(4, seed=6)
    for name, data in emnist_members("mnist", {"train": (x, y)}).items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "emnist-mnist-mapping.txt").write_text(
        mapping_text({n: (48 + n,) for n in range(10)})
    )
    assert detect_format(tmp_path) == "emnist"
    got = collect(decode_source(tmp_path))
    assert np.array_equal(got["train"]["pixels"], x)


def qmnist_extended(y: np.ndarray) -> np.ndarray:
    n = len(y)
    table = np.zeros((n, 8), dtype=np.int32)
    table[:, 0] = y
    table[:, 1] = 4  # hsf_4
    table[:, 2] = 2100 + np.arange(n) // 3  # writer: three digits each
    table[:, 3] = np.arange(n) % 3
    table[:, 4] = 48 + y
    table[:, 5] = 100_000 + np.arange(n)
    return table


def test_qmnist_extended_labels_become_metadata(tmp_path: Path) -> None:
    x, y = random_digits(7, seed=7)
    write_qmnist(tmp_path, "train", x, qmnist_extended(y))
    write_qmnist(tmp_path, "test", x[:3], qmnist_extended(y[:3]))
    assert detect_format(tmp_path) == "qmnist"
    decoded = decode_source(tmp_path)
    got = collect(decoded)
    assert np.array_equal(got["train"]["pixels"], x)
    assert np.array_equal(got["train"]["labels"], y)
    assert got["train"]["writer"].tolist() == (2100 + np.arange(7) // 3).tolist()
    assert got["train"]["nist_index"][0] == 100_000
    assert got["test"]["mnist_test_index"].tolist() == [0, 1, 2]


def test_kuzushiji_npz_with_class_map(tmp_path: Path) -> None:
    x, y = random_digits(8, seed=8)
    y49 = (y * 4) % 49
    write_kuzushiji(tmp_path, "k49", "train", x, y49.astype(np.uint8))
    write_kuzushiji(tmp_path, "k49", "test", x[:2], y49[:2].astype(np.uint8))
    rows = [
        "index,codepoint,char",
        *(f"{i},U+{0x3042 + i:04X},{chr(0x3042 + i)}" for i in range(49)),
    ]
    (tmp_path / "k49_classmap.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert detect_format(tmp_path / "k49-train-imgs.npz") == "kmnist-npz"
    decoded = decode_source(tmp_path)
    assert decoded.dataset == "k49"
    assert decoded.label_names is not None
    assert len(decoded.label_names) == 49
    got = collect(decoded)
    assert np.array_equal(got["train"]["pixels"], x)
    assert np.array_equal(got["train"]["labels"], y49)


def test_idx_labels_beyond_nine_are_kept(tmp_path: Path) -> None:
    from builders import write_idx_pair

    x, y = random_digits(5, seed=9)
    write_idx_pair(tmp_path, "train", x, y + 20)
    got = collect(decode_source(tmp_path))
    assert np.array_equal(got["train"]["labels"], y + 20)


# --- through the store, on both backends ---------------------------------------------


def test_ingest_stores_label_names_unlabeled_images_and_metadata(
    db_url: str, tmp_path: Path
) -> None:
    x, y = random_digits(6, seed=10)
    write_qmnist(tmp_path / "q", "train", x, qmnist_extended(y))
    write_csv(tmp_path / "k" / "test.csv", x[:2], None)
    with Catalog.open(db_url) as catalog:
        result = catalog.ingest(tmp_path / "q")
        assert result.dataset == "qmnist"
        assert result.label_set == "digits"
        rows = catalog.select(dataset="qmnist").rows()
        assert [row.label for row in rows] == y.tolist()
        unlabeled = catalog.ingest(tmp_path / "k", dataset="kaggle")
        assert unlabeled.unlabeled == 2
        assert [row.label for row in catalog.select(dataset="kaggle").rows()] == [None, None]


def test_ingest_records_file_and_content_digests(db_url: str, tmp_path: Path) -> None:
    x, y = random_digits(3, seed=11)
    write_qmnist(tmp_path, "train", x, qmnist_extended(y))
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path)
        sources = catalog.datasets()[0].sources
    images = tmp_path / "qmnist-train-images-idx3-ubyte.gz"
    import hashlib

    source = next(s for s in sources if s["uri"] == str(images.resolve()))
    assert source["file_md5"] == hashlib.md5(images.read_bytes()).hexdigest()
    assert source["md5"] == hashlib.md5(gzip.decompress(images.read_bytes())).hexdigest()


def test_upgrade_gives_existing_datasets_the_digits(db_url: str) -> None:
    from sqlalchemy import text

    from catalog.db.engine import make_engine
    from catalog.db.schema import upgrade

    engine = make_engine(db_url)
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (name, created_at) VALUES ('old', '2020-01-01')"))
    if engine.dialect.name != "sqlite":
        upgrade(engine)  # a shared PostgreSQL catalog is upgraded explicitly, not on open
    engine.dispose()
    with Catalog.open(db_url) as catalog:
        (summary,) = catalog.datasets()
    assert summary.label_set == "digits"
    assert summary.labels == list(range(10))
    assert summary.label_names == [str(n) for n in range(10)]
