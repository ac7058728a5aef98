"""The npz reader: keras' mnist.npz layout, and every way it can be wrong."""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits, write_npz

from catalog.errors import SourceFormatError
from catalog.sources import Decoded
from catalog.sources import npz as npz_source
from catalog.sources.npz import read_npz

X, Y = random_digits(30, seed=11)
Y8 = Y.astype(np.uint8)  # keras stores labels as uint8


def collect(decoded: Decoded) -> dict[str, tuple[npt.NDArray[Any], ...]]:
    parts: dict[str, list[tuple[npt.NDArray[Any], ...]]] = {}
    for batch in decoded.batches:
        assert batch.pixels.dtype == np.uint8
        assert batch.pixels.flags.c_contiguous
        assert batch.labels.dtype == np.int64
        parts.setdefault(batch.split, []).append((batch.indices, batch.labels, batch.pixels))
    return {
        split: tuple(np.concatenate([p[i] for p in items]) for i in range(3))
        for split, items in parts.items()
    }


@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip(tmp_path: Path, compressed: bool) -> None:
    path = write_npz(
        tmp_path / "mnist.npz", X[:20], Y8[:20], X[20:], Y8[20:], compressed=compressed
    )
    decoded = read_npz(path)
    assert decoded.format == "npz"
    assert decoded.counts == {"train": 20, "test": 10}
    got = collect(decoded)
    for split, (pixels, labels) in {"train": (X[:20], Y[:20]), "test": (X[20:], Y[20:])}.items():
        indices, got_labels, got_pixels = got[split]
        np.testing.assert_array_equal(indices, np.arange(len(pixels)))
        np.testing.assert_array_equal(got_labels, labels)
        np.testing.assert_array_equal(got_pixels, pixels)
    [source] = decoded.files
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert source.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert source.size == path.stat().st_size
    assert source.uri == str(path.resolve())


def test_val_split_flat_images_and_fortran_order(tmp_path: Path) -> None:
    path = write_npz(
        tmp_path / "mnist.npz",
        X[:10].reshape(10, 784),
        Y[:10],
        np.asfortranarray(X[10:20]),
        Y[10:20],
        x_val=X[20:],
        y_val=Y[20:],
    )
    decoded = read_npz(path)
    assert list(decoded.counts.items()) == [("train", 10), ("val", 10), ("test", 10)]
    got = collect(decoded)
    np.testing.assert_array_equal(got["train"][2], X[:10])
    np.testing.assert_array_equal(got["val"][2], X[20:])
    np.testing.assert_array_equal(got["test"][2], X[10:20])


class Touch:
    """Pickles as a call that creates ``path``, as a hostile object array would hold."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return Path.touch, (self.path,)


def test_object_array_refused_without_unpickling(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "mnist.npz"
    hostile = np.array([X[0], Touch(sentinel)], dtype=object)  # unpickling it creates sentinel
    np.savez(path, x_train=hostile, y_train=Y[:2], x_test=X[:2], y_test=Y[:2])
    expected = f"Refusing to read x_train from {path}: it is an array of dtype object"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_npz(path)
    assert not sentinel.exists()
    np.load(path, allow_pickle=True)["x_train"]  # the test's own check: loading would run it
    assert sentinel.exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x_train": X, "y_train": Y, "x_test": X},
            "expected arrays x_test and y_test, found no y_test",
        ),
        ({"x_test": X, "y_test": Y}, "found no x_train or y_train (keys: x_test, y_test)"),
        (
            {"x_train": X, "y_train": Y, "x_test": X, "y_test": Y, "x_val": X},
            "expected arrays x_val and y_val, found no y_val",
        ),
        (
            {"x_train": X, "y_train": Y[:-1], "x_test": X, "y_test": Y},
            "expected 30 y_train labels (one per image in x_train), found 29",
        ),
        (
            {"x_train": X[:, :, :27].reshape(30, -1), "y_train": Y, "x_test": X, "y_test": Y},
            "expected x_train of shape (n, height, width), found (30, 756)",
        ),
        (
            {"x_train": X, "y_train": Y, "x_test": X[None], "y_test": Y},
            "expected x_test of shape (n, height, width), found (1, 30, 28, 28)",
        ),
        (
            {"x_train": X.astype(np.float32), "y_train": Y, "x_test": X, "y_test": Y},
            "expected x_train of dtype uint8, found float32",
        ),
        (
            {"x_train": X, "y_train": Y.astype(np.float32), "x_test": X, "y_test": Y},
            "expected y_train labels as integers of shape (n,), found float32 (30,)",
        ),
        (
            {"x_train": X, "y_train": Y, "x_test": X, "y_test": np.where(Y[3] == Y, 11, Y)[:30]},
            "expected y_test labels 0-9, found 11 at index",
        ),
        (
            {"x_train": X, "y_train": Y - 5, "x_test": X, "y_test": Y},
            "expected y_train labels 0-9, found -",
        ),
        (
            {"x_train": X, "y_train": Y, "x_test": X[:, :20, :20], "y_test": Y},
            "expected one image size in all splits, found train 28x28, test 20x20",
        ),
    ],
)
def test_malformed(tmp_path: Path, arrays: dict[str, npt.NDArray[Any]], message: str) -> None:
    path = tmp_path / "bad.npz"
    savez: Callable[..., None] = np.savez
    savez(path, **arrays)
    with pytest.raises(SourceFormatError, match=re.escape(f"Invalid npz {path}: ")) as info:
        read_npz(path)
    assert message in str(info.value)


def test_header_claiming_more_than_the_member_holds(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "mnist.npz", X, Y, X, Y)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "x_train.npy":
                data = data.replace(b"(30, 28, 28)", b"(9999,28,28)")  # same header length
            dst.writestr(name, data)
    with pytest.raises(SourceFormatError, match=re.escape("but its member holds")):
        read_npz(bomb)


def test_array_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(npz_source, "MAX_ARRAY_BYTES", 1000)
    path = write_npz(tmp_path / "mnist.npz", X, Y, X, Y)
    with pytest.raises(SourceFormatError, match=re.escape("x_train claims shape (30, 28, 28)")):
        read_npz(path)


@pytest.mark.parametrize("cut", [10, 500, 5000])
def test_truncated_or_not_a_zip(tmp_path: Path, cut: int) -> None:
    good = write_npz(tmp_path / "good.npz", X, Y, X, Y)
    path = tmp_path / "cut.npz"
    path.write_bytes(good.read_bytes()[:-cut])
    expected = f"Cannot read {path} as npz: BadZipFile: File is not a zip file"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_npz(path)


def test_corrupt_member_data(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "mnist.npz", X, Y, X, Y)
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # inside x_train's pixels: the CRC no longer matches
    path.write_bytes(bytes(data))
    expected = f"Cannot read {path} as npz: BadZipFile: Bad CRC-32 for file 'x_train.npy'"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_npz(path)
