"""A selection in training code: the map-style dataset (with a real torch DataLoader
and worker processes), ``to_numpy`` and ``to_hf``."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image

from catalog import Catalog
from catalog.errors import MissingExtraError


@pytest.fixture
def digits(catalog: Catalog, tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(50, seed=9)
    write_idx_pair(tmp_path / "src", "train", pixels[:30], labels[:30])
    write_idx_pair(tmp_path / "src", "t10k", pixels[30:], labels[30:])
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def test_dataset_items_are_the_selections_images_and_labels(digits: Catalog) -> None:
    picked = digits.select(sample=20, seed=4, order="random")
    x, y = picked.arrays()
    data = picked.dataset()
    assert len(data) == 20
    for i in (0, 7, 19, -1):
        image, label = data[i]
        assert image.dtype == np.uint8
        assert image.flags.writeable
        assert np.array_equal(image, x[i])
        assert label == y[i]
    with pytest.raises(IndexError, match="index 20 out of range for a dataset of 20 images"):
        data[20]
    batch = data.__getitems__([3, 1, 3])
    assert [label for _, label in batch] == [y[3], y[1], y[3]]


def test_dataset_gives_pil_images_and_applies_the_transform(digits: Catalog) -> None:
    x, y = digits.select(split="test").arrays()
    data = digits.select(split="test").dataset(lambda im: np.asarray(im)[::-1], pil=True)
    image, label = data[2]
    assert np.array_equal(image, x[2][::-1])
    assert label == y[2]
    plain, _ = digits.select(split="test").dataset(pil=True)[2]
    assert isinstance(plain, Image.Image)
    assert plain.mode == "L"


def test_dataset_pickles_without_its_connection(digits: Catalog) -> None:
    data = digits.select(split="train").dataset()
    first = data[0]
    assert data.engine is not None
    copy = pickle.loads(pickle.dumps(data))
    assert copy.engine is None
    image, label = copy[0]
    assert np.array_equal(image, first[0])
    assert label == first[1]


def test_a_dataloader_with_two_workers_reads_every_image(digits: Catalog) -> None:
    torch = pytest.importorskip("torch", reason='torch is not installed (pip install -e ".[test]")')
    from torch.utils.data import DataLoader

    picked = digits.select(labels=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    x, y = picked.arrays()
    data = picked.dataset(transform=lambda image: torch.from_numpy(image).float() / 255)
    data[0]  # the parent has an engine and a connection before the workers fork
    # A map-style dataset by protocol (len and getitem), not a torch Dataset subclass.
    loader: Any = DataLoader(data, batch_size=8, num_workers=2, shuffle=False)  # type: ignore[arg-type]
    images, labels = [], []
    for batch_images, batch_labels in loader:
        assert batch_images.shape[1:] == (28, 28)
        images.append(batch_images)
        labels.append(batch_labels)
    got = torch.cat(images)
    assert np.array_equal((got * 255).round().to(torch.uint8).numpy(), x)
    assert torch.cat(labels).tolist() == y.tolist()
    image, label = data[len(data) - 1]  # the parent's connection still works after the workers
    assert np.array_equal((image * 255).round().to(torch.uint8).numpy(), x[-1])
    assert label == y[-1]
    shuffled: Any = DataLoader(data, batch_size=5, num_workers=2, shuffle=True)  # type: ignore[arg-type]
    assert sorted(torch.cat([b for _, b in shuffled]).tolist()) == sorted(y.tolist())


def test_to_numpy_is_arrays(digits: Catalog) -> None:
    picked = digits.select(labels=[2, 4])
    x, y = picked.to_numpy()
    x2, y2 = picked.arrays()
    assert np.array_equal(x, x2)
    assert np.array_equal(y, y2)


def test_to_hf_gives_images_and_named_classes(digits: Catalog) -> None:
    pytest.importorskip("datasets", reason="Hugging Face datasets is not installed")
    picked = digits.select(split="test")
    hf = picked.to_hf()
    x, y = picked.arrays()
    assert hf.features["label"].names == [str(n) for n in range(10)]
    assert hf["label"] == y.tolist()
    assert np.array_equal(np.stack([np.asarray(im) for im in hf["image"]]), x)


def test_to_hf_without_datasets_is_a_one_line_error(
    digits: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingExtraError, match=r'pip install "mnist-catalog\[hf\]"'):
        digits.select().to_hf()
