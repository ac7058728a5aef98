"""The image-folder reader: both layouts, and errors that name the file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits, write_image_folder
from PIL import Image

from catalog.errors import InvalidNameError, SourceFormatError
from catalog.sources import Decoded
from catalog.sources import folder as folder_source
from catalog.sources.folder import read_folder

X, Y = random_digits(24, seed=5)
SPLITS = {"train": (X[:16], Y[:16]), "test": (X[16:], Y[16:])}


def collect(decoded: Decoded) -> dict[str, tuple[npt.NDArray[Any], ...]]:
    """Return split -> (indices, labels, pixels), sorted by index."""
    parts: dict[str, list[tuple[npt.NDArray[Any], ...]]] = {}
    for batch in decoded.batches:
        assert batch.pixels.dtype == np.uint8
        assert batch.pixels.flags.c_contiguous
        parts.setdefault(batch.split, []).append((batch.indices, batch.labels, batch.pixels))
    result: dict[str, tuple[npt.NDArray[Any], ...]] = {}
    for split, items in parts.items():
        indices, labels, pixels = (np.concatenate([p[i] for p in items]) for i in range(3))
        order = np.argsort(indices)
        result[split] = (indices[order], labels[order], pixels[order])
    return result


@pytest.mark.parametrize("layout", ["classic", "by-label"])
@pytest.mark.parametrize("ext", ["png", "bmp", "pgm"])
def test_round_trip(tmp_path: Path, layout: str, ext: str) -> None:
    root = write_image_folder(tmp_path / "digits", SPLITS, layout=layout, ext=ext)
    decoded = read_folder(root)
    assert decoded.format == f"folder/{layout}"
    assert decoded.counts == {"test": 8, "train": 16}
    assert decoded.files == []  # provenance comes once every image is read
    got = collect(decoded)
    for split, (pixels, labels) in SPLITS.items():
        indices, got_labels, got_pixels = got[split]
        np.testing.assert_array_equal(indices, np.arange(len(pixels)))
        np.testing.assert_array_equal(got_labels, labels)
        np.testing.assert_array_equal(got_pixels, pixels)
    [source] = decoded.files
    files = sorted(p for p in root.rglob(f"*.{ext}"))
    stream = b"".join(
        p.relative_to(root).as_posix().encode()
        + b"\0"
        + p.stat().st_size.to_bytes(8, "big")
        + p.read_bytes()
        for p in sorted(files, key=lambda p: p.relative_to(root).as_posix())
    )
    assert source.sha256 == hashlib.sha256(stream).hexdigest()
    assert source.md5 == hashlib.md5(stream).hexdigest()
    assert source.size == sum(p.stat().st_size for p in files)
    assert source.uri == str(root.resolve())
    assert source.format == f"folder/{layout}"


def test_indices_from_names_with_gaps(tmp_path: Path) -> None:
    root = write_image_folder(
        tmp_path, {"train": (X[:3], Y[:3])}, layout="by-label", indices={"train": [7, 1200, 3]}
    )
    indices, labels, pixels = collect(read_folder(root))["train"]
    np.testing.assert_array_equal(indices, [3, 7, 1200])
    np.testing.assert_array_equal(labels, Y[[2, 0, 1]])
    np.testing.assert_array_equal(pixels, X[[2, 0, 1]])


def test_by_label_names_that_are_not_integers_are_numbered_in_order(tmp_path: Path) -> None:
    for name, label, image in [("b", 3, X[0]), ("a", 3, X[1]), ("z", 1, X[2])]:
        (tmp_path / "train" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "train" / str(label) / f"{name}.png")
    indices, labels, pixels = collect(read_folder(tmp_path))["train"]
    np.testing.assert_array_equal(indices, [0, 1, 2])  # 1/z, 3/a, 3/b
    np.testing.assert_array_equal(labels, [1, 3, 3])
    np.testing.assert_array_equal(pixels, X[[2, 1, 0]])


def test_rgb_and_jpeg_become_grayscale(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    rgb = np.stack([X[0], X[0], X[0]], axis=-1)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "train" / "000000_4.png")
    Image.fromarray(X[1]).save(tmp_path / "train" / "000001_5.jpg", quality=95)
    _, labels, pixels = collect(read_folder(tmp_path))["train"]
    np.testing.assert_array_equal(labels, [4, 5])
    np.testing.assert_array_equal(pixels[0], X[0])
    assert np.abs(pixels[1].astype(int) - X[1]).mean() < 4


def test_batches_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folder_source, "BATCH_SIZE", 5)
    root = write_image_folder(tmp_path, SPLITS)
    sizes = [(b.split, len(b.indices)) for b in read_folder(root).batches]
    assert sizes == [
        ("test", 5),
        ("test", 3),
        ("train", 5),
        ("train", 5),
        ("train", 5),
        ("train", 1),
    ]


def test_hidden_files_and_root_files_are_ignored(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    (root / "README.txt").write_text("digits")
    (root / "train" / ".DS_Store").write_bytes(b"\0")
    (root / ".cache").mkdir()
    assert read_folder(root).counts == {"test": 8, "train": 16}


# Errors that name the file ------------------------------------------------------


def expect_error(root: Path, rel: str, message: str, *, listing: bool = True) -> None:
    """Reading ``root`` fails naming ``rel`` and ``root``; listing errors come up front."""
    if listing:
        with pytest.raises(SourceFormatError, match=re.escape(message)) as info:
            read_folder(root)
    else:
        decoded = read_folder(root)
        with pytest.raises(SourceFormatError, match=re.escape(message)) as info:
            list(decoded.batches)
    assert rel in str(info.value)
    assert str(root) in str(info.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("000001.png", "expected <index>_<label>."),
        ("000001_3.txt", "expected an image ending in"),
        ("labels.csv", "expected <index>_<label>."),
        ("000001_012.png", "expected a number such as 0-9, found 012"),
        ("abc_1.png", "expected <index>_<label>."),
    ],
)
def test_classic_names_that_do_not_parse(tmp_path: Path, name: str, message: str) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    (root / "train" / name).write_bytes(b"x")
    expect_error(root, f"train/{name}", message)


def test_by_label_folder_that_is_not_a_label(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS, layout="by-label")
    (root / "train" / "010").mkdir()
    expect_error(root, "train/010", "expected a number such as 0-9, found 010")
    (root / "train" / "010").rmdir()
    (root / "train" / "seven").mkdir()
    expect_error(root, "train/seven", "expected only label folders 0-9")


def test_by_label_stray_file_and_nested_folder(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS, layout="by-label")
    label = str(int(Y[0]))
    (root / "train" / label / "notes").mkdir()
    expect_error(root, f"train/{label}/notes", "Unexpected folder")


def test_duplicate_indices(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    Image.fromarray(X[0]).save(root / "train" / "3_9.png")
    expect_error(root, f"train/000003_{Y[3]}.png and train/3_9.png", "Duplicate index 3")


def test_duplicate_indices_across_label_folders(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS, layout="by-label")
    other = (int(Y[2]) + 1) % 10
    (root / "train" / str(other)).mkdir(exist_ok=True)
    Image.fromarray(X[0]).save(root / "train" / str(other) / "000002.png")
    with pytest.raises(SourceFormatError, match="Duplicate index 2 in split train") as info:
        read_folder(root)
    assert f"train/{Y[2]}/000002.png" in str(info.value)
    assert f"train/{other}/000002.png" in str(info.value)


def test_mixed_layouts(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"train": SPLITS["train"]}, layout="classic")
    write_image_folder(tmp_path, {"test": SPLITS["test"]}, layout="by-label")
    with pytest.raises(SourceFormatError, match="test is by-label, train is classic"):
        read_folder(tmp_path)


def test_invalid_split_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"Train Set": SPLITS["train"]})
    with pytest.raises(InvalidNameError, match=re.escape("'Train Set'")):
        read_folder(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(SourceFormatError, match=re.escape(f"No images found in {tmp_path}")):
        read_folder(tmp_path)


@pytest.mark.parametrize(
    ("cut", "message"),
    [(0, "not a png, jpeg, bmp or pgm image"), (30, "Cannot decode image"), (60, "truncated")],
)
def test_truncated_image(tmp_path: Path, cut: int, message: str) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    bad = root / "train" / f"000005_{Y[5]}.png"
    bad.write_bytes(bad.read_bytes()[:cut])
    expect_error(root, f"train/000005_{Y[5]}.png", message, listing=False)


def test_not_an_image(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    (root / "test" / f"000002_{Y[18]}.png").write_text("hello")
    expect_error(
        root, f"test/000002_{Y[18]}.png", "not a png, jpeg, bmp or pgm image", listing=False
    )


def test_mixed_image_sizes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    Image.fromarray(X[4, :20, :20]).save(root / "train" / f"000004_{Y[4]}.png")
    expect_error(root, f"train/000004_{Y[4]}.png", "is 20x20, expected 28x28", listing=False)


def test_symlinked_file_outside_root_refused(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "root", SPLITS)
    outside = tmp_path / "secret.png"
    Image.fromarray(X[0]).save(outside)
    (root / "train" / "000099_1.png").symlink_to(outside)
    expect_error(root, "train/000099_1.png", "is a symlink to")


def test_symlinked_folder_outside_root_refused(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "root", {"train": SPLITS["train"]})
    elsewhere = write_image_folder(tmp_path / "elsewhere", {"test": SPLITS["test"]})
    (root / "test").symlink_to(elsewhere / "test")
    expect_error(root, "test", f"is a symlink to {elsewhere / 'test'}, outside the folder")


def test_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, SPLITS)
    (root / "copy").symlink_to(root / "test")
    decoded = read_folder(root)
    assert decoded.counts == {"copy": 8, "test": 8, "train": 16}
    np.testing.assert_array_equal(collect(decoded)["copy"][2], X[16:])
