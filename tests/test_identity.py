"""Identify: exact copies by digest, lossy copies by signature and pixels, foreign images as none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_image_folder, write_pickle_gz, write_py2_pickle_gz
from old_recipe import Arrays, letter, write_old_recipe_folder

from catalog import Catalog
from catalog.identity.leaks import Leak, find_leakage
from catalog.identity.match import identify
from catalog.identity.registry import DATA_DIR, load_shipped
from catalog.identity.signature import pixel_digests, shifted

# --- the shipped registry -----------------------------------------------------


def test_shipped_files_are_small_and_complete() -> None:
    files = sorted(DATA_DIR.iterdir())
    assert [f.name for f in files] == [
        "mnist-index.npz", "mnist-signatures-0.npy", "mnist-signatures-1.npy",
        "mnist-signatures-2.npy",
    ]  # fmt: skip
    assert all(f.stat().st_size < 1_000_000 for f in files)
    registry = load_shipped("mnist")
    assert registry.split_names == ("test", "train")
    assert len(registry) == 70_000
    assert registry.signatures.shape == (70_000, 32)
    assert np.bincount(registry.labels[registry.split_codes == 0]).tolist()[:3] == [980, 1135, 1032]
    assert registry.duplicated_positions() == 0


@pytest.mark.mnist
def test_shipped_digests_are_the_real_pixels(mnist_arrays: Arrays) -> None:
    registry = load_shipped("mnist")
    for code, split in enumerate(registry.split_names):
        pixels, labels = mnist_arrays[split]
        mine = registry.split_codes == code
        np.testing.assert_array_equal(registry.digests[mine], pixel_digests(pixels))
        np.testing.assert_array_equal(registry.labels[mine], labels)


# --- exact: the classic pickle ----------------------------------------------------


CLASSIC_SUMMARY = [
    (
        "test = mnist test (exact); train 0-49,999 = mnist train 0-49,999 (exact); "
        "val 0-9,999 = mnist train 50,000-59,999 (exact)"
    ),
    "labels agree for all",
]


@pytest.mark.mnist
@pytest.mark.parametrize("protocol", ["py2", 4])
def test_classic_pickle_maps_exactly(
    tmp_path: Path, mnist_arrays: Arrays, protocol: str | int, backend: str, db_url: str
) -> None:
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    splits = [(x[:50_000], y[:50_000]), (x[50_000:], y[50_000:]), (xt, yt)]
    path = tmp_path / "mnist.pkl.gz"
    if protocol == "py2":
        floats = [(p.reshape(len(p), -1).astype(np.float32) / 256, labels) for p, labels in splits]
        write_py2_pickle_gz(path, floats)
    else:
        write_pickle_gz(path, splits, protocol=int(protocol))
    with Catalog.open(db_url) as catalog:
        catalog.ingest(path, dataset="classic")
        result = identify(catalog.engine, "classic")
    assert result.counts() == {"none": 0, "exact": 70_000, "lossy": 0}
    assert result.summary() == CLASSIC_SUMMARY
    val = result.splits == "val"
    np.testing.assert_array_equal(result.canonical_indices[val], np.arange(50_000, 60_000))
    assert set(result.canonical_splits[val].tolist()) == {"train"}
    assert find_leakage([result]) == []


# --- lossy: the old recipe's folder ------------------------------------------------


def check_old_recipe(result: object, confirmed_by: str) -> None:
    from catalog.identity.result import IdentityResult

    assert isinstance(result, IdentityResult)
    assert result.counts() == {"none": 2, "exact": 0, "lossy": 1998}
    expected = {"train": ("train", 0), "val": ("train", 50_000), "test": ("test", 0)}
    for split, (canonical, offset) in expected.items():
        rows = (result.splits == split) & (result.kinds == 2)
        assert set(result.canonical_splits[rows].tolist()) == {canonical}
        np.testing.assert_array_equal(result.canonical_indices[rows], result.indices[rows] + offset)
    foreign = [m for m in result.matches() if m.kind == "none"]
    assert [(m.split, m.index) for m in foreign] == [("test", 298), ("test", 299)]
    [relabel] = result.label_disagreements()
    assert (relabel.split, relabel.index, relabel.label, relabel.canonical_label) == (
        "train",
        8,
        7,
        1,
    )
    assert {m.confirmed_by for m in result.matches() if m.kind == "lossy"} == {confirmed_by}
    summary = result.summary()
    assert summary[0] == (
        "test 0-297 = mnist test 0-297 (lossy); test: 2 images not in mnist (none); "
        "train 0-1,399 = mnist train 0-1,399 (lossy); "
        "val 0-299 = mnist train 50,000-50,299 (lossy)"
    )
    assert summary[1].startswith("1,998 of 2,000 lossy copies of mnist (JPEG-like re-encoding")
    assert summary[2] == "1 labels disagree: train 8 says 7 (mnist train 8 is 1)"
    assert "re-ingest the originals with `mnist-catalog ingest mnist`" in summary


@pytest.mark.mnist
def test_old_recipe_folder_by_signature(old_recipe: Path, db_url: str) -> None:
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old_recipe, dataset="old")
        result = identify(catalog.engine, "old")
    check_old_recipe(result, "signature")
    assert result.max_error() is None
    assert "confirmed by signature only" in result.summary()[-1]


@pytest.mark.mnist
def test_old_recipe_folder_by_pixels(old_recipe: Path, mnist_dir: Path, db_url: str) -> None:
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old_recipe, dataset="old")
        catalog.ingest(mnist_dir, dataset="mnist")
        result = identify(catalog.engine, "old")
    check_old_recipe(result, "pixels")
    error = result.max_error()
    assert error is not None
    assert 5 < error < 80
    assert f"max error {error:.0f} levels" in result.summary()[1]


@pytest.mark.mnist
def test_leakage_from_reference_test_split(
    tmp_path: Path, mnist_arrays: Arrays, db_url: str
) -> None:
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    train = (np.concatenate([x[:50], xt[10:13]]), np.concatenate([y[:50], yt[10:13]]))
    write_image_folder(tmp_path / "leaky", {"train": train, "test": (xt[:20], yt[:20])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "leaky", dataset="leaky")
        result = identify(catalog.engine, "leaky")
    pairs = ((50, 10), (51, 11), (52, 12))
    assert find_leakage([result]) == [
        Leak("leaky", "train", "mnist", "test", 3, pairs),  # into the reference's test split
        Leak("leaky", "train", "leaky", "test", 3, pairs),  # into its own test split
    ]


# --- against a dataset of the catalog ---------------------------------------------


def test_against_a_catalog_dataset(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(300, seed=11)
    write_image_folder(tmp_path / "ref", {"train": (pixels[:200], labels[:200]),
                                          "test": (pixels[200:], labels[200:])})  # fmt: skip
    copies = np.concatenate([pixels[150:200], shifted(pixels[200:210], 1, -1)])
    copy_labels = np.concatenate([labels[150:200], labels[200:210]])
    copy_labels[3] = (copy_labels[3] + 1) % 10
    foreign, _ = random_digits(5, seed=99)
    write_old_recipe_folder(tmp_path / "copy", {"train": (copies, copy_labels)})
    write_image_folder(tmp_path / "copy", {"test": (np.concatenate([pixels[:20], foreign]),
                                                    np.concatenate([labels[:20], [0] * 5]))})  # fmt: skip
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "ref", dataset="ref")
        catalog.ingest(tmp_path / "copy", dataset="copy")
        result = identify(catalog.engine, "copy", against="ref")
        itself = identify(catalog.engine, "ref", against="ref")
    assert itself.counts() == {"none": 0, "exact": 300, "lossy": 0}
    assert result.reference == "ref"
    assert result.counts() == {"none": 5, "exact": 20, "lossy": 60}
    lossy = result.kinds == 2
    assert set(result.confirmed_by[lossy].tolist()) == {2}  # pixels
    np.testing.assert_array_equal(result.canonical_indices[lossy][:50], np.arange(150, 200))
    np.testing.assert_array_equal(result.canonical_indices[lossy][50:], np.arange(0, 10))
    assert set(result.canonical_splits[lossy][50:].tolist()) == {"test"}
    assert result.shifts[lossy][50:].tolist() == [[1, -1]] * 10
    assert [(d.split, d.index) for d in result.label_disagreements()] == [("train", 3)]
    assert "shift" in result.transforms()
    copied_test = tuple((50 + i, i) for i in range(5))
    assert find_leakage([result]) == [Leak("copy", "train", "ref", "test", 10, copied_test)]
    # With the reference's own result: its train split is what copy's test holds.
    assert find_leakage([result, itself]) == [
        Leak("copy", "train", "ref", "test", 10, copied_test),
        Leak("ref", "train", "copy", "test", 20, tuple((i, i) for i in range(5))),
    ]


def test_foreign_letters_are_none_against_mnist(tmp_path: Path, db_url: str) -> None:
    images = np.stack([letter("A"), letter("Q")])
    write_image_folder(tmp_path / "letters", {"train": (images, np.array([0, 1]))})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "letters", dataset="letters")
        result = identify(catalog.engine, "letters")
    assert result.counts() == {"none": 2, "exact": 0, "lossy": 0}
    assert result.summary() == ["train: 2 images not in mnist (none)"]
