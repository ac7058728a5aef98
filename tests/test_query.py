"""Selections: filters in SQL, reproducible samples, arrays for training code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair

from catalog import Catalog
from catalog.errors import DatasetNotFoundError, SelectionError


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> tuple[Catalog, np.ndarray, np.ndarray]:
    pixels, labels = random_digits(300, seed=11)
    write_idx_pair(tmp_path / "src", "train", pixels[:200], labels[:200])
    write_idx_pair(tmp_path / "src", "t10k", pixels[200:], labels[200:])
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog, pixels, labels


def test_split_label_and_index_filters_combine(
    digits: tuple[Catalog, np.ndarray, np.ndarray],
) -> None:
    catalog, pixels, labels = digits
    selection = catalog.select(split="train", labels=[3, 5], index=(50, 150))
    x, y = selection.arrays()
    expected = [i for i in range(50, 150) if labels[i] in (3, 5)]
    assert np.array_equal(y, labels[expected])
    assert np.array_equal(x, pixels[expected])
    assert selection.count() == len(expected)
    assert [r.index for r in selection.rows()] == expected


def test_counts_group_by_split_and_label(digits: tuple[Catalog, np.ndarray, np.ndarray]) -> None:
    catalog, _, labels = digits
    counts = catalog.select().counts(("split", "label"))
    train = np.bincount(labels[:200], minlength=10)
    assert {k[1]: v for k, v in counts.items() if k[0] == "train"} == {
        label: int(n) for label, n in enumerate(train) if n
    }
    assert catalog.select(split="test").count() == 100


def test_sample_is_reproducible_and_uniform_without_replacement(
    digits: tuple[Catalog, np.ndarray, np.ndarray],
) -> None:
    catalog, _, _ = digits
    first = [r.index for r in catalog.select(split="train", sample=40, seed=5).rows()]
    again = [r.index for r in catalog.select(split="train", sample=40, seed=5).rows()]
    other = [r.index for r in catalog.select(split="train", sample=40, seed=6).rows()]
    assert first == again
    assert first != other
    assert len(set(first)) == 40
    assert first == sorted(first)  # index order unless --order random


def test_per_label_takes_n_of_each_label(digits: tuple[Catalog, np.ndarray, np.ndarray]) -> None:
    catalog, _, labels = digits
    _, y = catalog.select(split="train", per_label=3, seed=1).arrays()
    present = np.unique(labels[:200])
    assert sorted(np.bincount(y, minlength=10)[present].tolist()) == [3] * len(present)


def test_sample_is_the_same_in_a_new_process(
    digits: tuple[Catalog, np.ndarray, np.ndarray], db_url: str
) -> None:
    catalog, _, _ = digits
    here = [r.index for r in catalog.select(split="train", per_label=2, seed=9).rows()]
    code = (
        "import sys; from catalog import Catalog; c = Catalog.open(sys.argv[1]);"
        "print([r.index for r in c.select(split='train', per_label=2, seed=9).rows()])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(here)


def test_random_order_limit_and_offset(digits: tuple[Catalog, np.ndarray, np.ndarray]) -> None:
    catalog, _, _ = digits
    ordered = [r.index for r in catalog.select(split="train", limit=5, offset=10).rows()]
    assert ordered == list(range(10, 15))
    shuffled = [r.index for r in catalog.select(split="train", order="random", seed=2).rows()]
    assert sorted(shuffled) == list(range(200))
    assert shuffled != list(range(200))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"labels": [10]}, SelectionError, "Label '10' is not in the label set: expected one of 0, 1"),
        ({"split": "validation"}, SelectionError, "Unknown split 'validation'"),
        ({"dataset": "nope"}, DatasetNotFoundError, "No dataset named 'nope' in the catalog (datasets: digits)"),
        ({"index": (5, 2)}, SelectionError, "Index range 5:2 is not a half-open range"),
        ({"sample": 3, "per_label": 2}, SelectionError, "--sample and --per-label cannot be combined"),
    ],
)  # fmt: skip
def test_bad_selections_are_clear_errors(
    digits: tuple[Catalog, np.ndarray, np.ndarray],
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    catalog, _, _ = digits
    with pytest.raises(error, match=re.escape(message)):
        catalog.select(**kwargs).count()  # type: ignore[arg-type]


def test_several_datasets_need_a_name(digits: tuple[Catalog, np.ndarray, np.ndarray]) -> None:
    catalog, _, _ = digits
    catalog.ingest(Path(__file__).parent / "data" / "tiny", dataset="tiny")
    with pytest.raises(SelectionError, match=re.escape("several datasets (digits, tiny)")):
        catalog.select().count()
    assert catalog.select(dataset="tiny").count() == 5


@pytest.mark.mnist
def test_one_label_of_one_split_on_real_mnist(mnist_catalog: Catalog) -> None:
    x, y = mnist_catalog.select(split="test", labels=[1]).arrays()
    assert x.shape == (1135, 28, 28)
    assert x.dtype == np.uint8
    assert set(y.tolist()) == {1}
