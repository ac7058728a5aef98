"""The read budget in the library: each reader's refusal as an exception with its exact
message, what a raised budget lets through (and the memory that then takes), and the
minor fixes of issue 24 (shard names, non-ASCII digits, empty sources, labels)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import hostile as h
import numpy as np
import pytest
from builders import random_digits, traced_peak, write_image_folder, write_pickle_gz
from family_builders import write_parquet
from PIL import Image
from typer.testing import CliRunner

from catalog import budget as budget_module
from catalog.budget import DEFAULT_BUDGET, ReadBudget, option
from catalog.errors import EmptySourceError, OverBudgetError, SourceFormatError
from catalog.sources import Decoded
from catalog.sources.classic_pickle import read_pickle
from catalog.sources.csv_text import read_csv
from catalog.sources.folder import read_folder
from catalog.sources.guard import LabelCheck, bounded
from catalog.sources.idx import read_idx
from catalog.sources.npz import read_npz
from catalog.sources.parquet import dataset_of, read_parquet
from catalog.sources.pixels import to_gray

MiB = 1 << 20
X, Y = random_digits(6, seed=25)
LOOSE = ReadBudget(max_ratio=10**6)  # lets a bomb's header through, to test what follows


def _count(decoded: Decoded, batches: int | None = None) -> list[int]:
    sizes = []
    for batch in decoded.batches:
        sizes.append(len(batch.indices))
        if batches is not None and len(sizes) == batches:
            break
    return sizes


# The budget itself ---------------------------------------------------------------


def test_every_limit_is_positive_and_named_by_its_option() -> None:
    assert option("max_line_bytes") == "--max-line-bytes"
    with pytest.raises(ValueError, match=re.escape("--max-side must be a positive integer")):
        ReadBudget(max_side=0)
    with pytest.raises(OverBudgetError, match=re.escape("(--max-labels raises it)")):
        ReadBudget().refuse("max_labels", "x names 2,000 classes")


def test_labels_past_int32_and_past_the_budget_are_refused() -> None:
    check = LabelCheck(ReadBudget(max_labels=3), "src")
    check.check(np.array([0, 1, -1]), np.arange(3))  # -1: unlabeled, not a label
    check.check(np.array([2, 2, 1]), np.arange(3, 6))
    with pytest.raises(OverBudgetError, match=re.escape("src holds 4 distinct labels (0, 1, 2, ...): more than the 3 distinct labels")):  # fmt: skip
        check.check(np.array([7]), np.array([6]))
    with pytest.raises(SourceFormatError, match=re.escape("src: label 2,147,483,648 of image 9 does not fit a 32-bit integer")):  # fmt: skip
        LabelCheck(DEFAULT_BUDGET, "src").check(np.array([0, 2**31]), np.array([8, 9]))


# Blocks sized in bytes -----------------------------------------------------------


def test_idx_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    folder = h.idx_huge_images(tmp_path)
    images = folder / "train-images-idx3-ubyte.gz"
    size = images.stat().st_size
    expected = (
        f"{images} inflates {size:,} bytes to 4,294,967,312 ({4_294_967_312 / size:,.0f} to 1): "
        "more than the 100 to 1 the read budget allows (--max-ratio raises it)"
    )
    with pytest.raises(OverBudgetError, match=re.escape(expected)):
        read_idx(folder)


@pytest.mark.parametrize(("block_mib", "rows"), [(64, 64), (8, 8)])
def test_idx_images_of_1024_stream_in_blocks_of_bytes(
    tmp_path: Path, block_mib: int, rows: int
) -> None:
    folder = h.idx_huge_images(tmp_path, count=256)
    budget = ReadBudget(max_ratio=10**6, max_block_bytes=block_mib * MiB)
    with traced_peak() as peak:
        sizes = _count(read_idx(folder, budget=budget), batches=3)
    assert sizes == [rows] * 3  # 1 MiB images: as many as the block's MiB, not 4,096
    # the block yielded, the one before it (still held by the loop), and the gzip read
    # that fills it (its output, copied in): measured 150 MiB for 64, 32 MiB for 8
    assert peak[0] < 4 * block_mib * MiB + 8 * MiB


def test_npz_image_of_33000_is_refused_by_its_side(tmp_path: Path) -> None:
    path = h.npz_huge_image(tmp_path)
    expected = (
        f"{path}!x_train.npy claims images of 33000x33000: more than the 1,024 pixels a side "
        "the read budget allows (--max-side raises it)"
    )
    with pytest.raises(OverBudgetError, match=re.escape(expected)):
        read_npz(path, budget=LOOSE)


def test_csv_wide_lines_stream_in_blocks_of_bytes(tmp_path: Path) -> None:
    path = h.csv_wide_lines(tmp_path, count=160)  # 84 MB of text: past the ratio's floor
    with pytest.raises(OverBudgetError, match=re.escape(f"{path} inflates ")):
        read_csv(path)
    with traced_peak() as peak:
        sizes = _count(read_csv(path, budget=LOOSE), batches=2)
    # 512 x 512 + 1 values a line, 8 bytes each once parsed: 31 lines in 64 MiB
    assert sizes == [31, 31]
    assert peak[0] < 2 * 64 * MiB + 8 * MiB  # measured: 109 MiB


def test_a_line_past_the_budget_is_refused_after_reading_only_that_much(tmp_path: Path) -> None:
    path = h.csv_endless_line(tmp_path)
    expected = (
        f"{path} line 1 runs on: more than the 4,096 bytes a line the read budget allows "
        "(--max-line-bytes raises it)"
    )
    with traced_peak() as peak, pytest.raises(OverBudgetError, match=re.escape(expected)):
        read_csv(path, budget=ReadBudget(max_line_bytes=4096))
    assert peak[0] < 1 * MiB


def test_rgb_to_gray_widens_a_strip_not_the_image() -> None:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, mode="RGB")
    with traced_peak() as peak:
        converted = to_gray(image)
    # the image itself (12 MB) is copied out of Pillow once; int64 planes took 128 MB more
    assert peak[0] < 40 * MiB
    wide = rgb.astype(np.int64)
    luma = (wide[..., 0] * 299 + wide[..., 1] * 587 + wide[..., 2] * 114 + 500) // 1000
    np.testing.assert_array_equal(converted.pixels, luma)


# Pickles -------------------------------------------------------------------------


def test_pickle_of_dups_is_refused_in_a_blink(tmp_path: Path) -> None:
    path = h.pickle_of_dups(tmp_path)
    start = time.perf_counter()
    with pytest.raises(SourceFormatError, match=re.escape(f"Refusing to unpickle {path}: it holds more than 10,000 opcodes")):  # fmt: skip
        read_pickle(path)
    assert time.perf_counter() - start < 2  # 20 minutes of CPU before


def test_pickle_past_its_budget_is_refused(tmp_path: Path) -> None:
    x, y = random_digits(1500, seed=3)  # 1500 float32 images: 4.7 MB of pickle
    path = write_pickle_gz(tmp_path / "mnist.pkl.gz", [(x, y), (x[:5], y[:5])])
    read_pickle(path)  # within the default budget
    expected = (
        re.escape(f"{path} is a pickle of ")
        + r"2,\d{3},\d{3}"
        + re.escape(
            " bytes so far: more than the 2,097,151 bytes of pickle data the read budget allows "
            "(--max-pickle-bytes raises it)"
        )
    )
    with pytest.raises(OverBudgetError, match=expected):
        read_pickle(path, budget=ReadBudget(max_pickle_bytes=2 * MiB - 1))


# Library errors become one line ------------------------------------------------------


def test_memory_error_in_a_reader_is_one_line(tmp_path: Path) -> None:
    @bounded
    def read_hungry(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
        np.zeros(1, np.uint8)
        raise MemoryError("Unable to allocate 3.50 GiB for an array")

    path = h.csv_rows(tmp_path, h.pixels_row(1, 4))
    expected = f"Cannot read {path}: out of memory (MemoryError: Unable to allocate 3.50 GiB for an array)"  # fmt: skip
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_hungry(path)


# Labels the reader passes, that phase 2 (sparse label sets) makes cheap to store ---------


@pytest.mark.parametrize("label", [1_000_000, 2**31 - 1])
def test_large_labels_that_fit_32_bits_pass_the_reader(tmp_path: Path, label: int) -> None:
    path = h.csv_rows(tmp_path, h.pixels_row(label, 4), h.pixels_row(3, 4))
    [batch] = read_csv(path).batches
    assert batch.labels.tolist() == [label, 3]


# Minor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "dataset"),
    [
        ("mnist/train-00000-of-00001.parquet", "mnist"),
        ("fashion_mnist/data/test-00000-of-00001-9a8b7c.parquet", "fashion_mnist"),
        ("x/mnist-00000-of-00003.parquet", "mnist"),
        ("mnist/train.parquet", None),
    ],
)
def test_a_shard_is_named_after_its_dataset(tmp_path: Path, rel: str, dataset: str | None) -> None:
    path = write_parquet(tmp_path / rel, X, Y)
    assert dataset_of(path) == dataset
    assert read_parquet(path).dataset == dataset


def test_a_shard_ingests_under_its_dataset_name(tmp_path: Path) -> None:
    from catalog.cli import app

    path = write_parquet(tmp_path / "mnist" / "train-00000-of-00001.parquet", X, Y)
    db = tmp_path / "catalog.db"
    result = CliRunner().invoke(app, ["--db", str(db), "ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Ingested 6 images into mnist: train 6")


def test_a_fifo_named_like_a_shard_is_not_opened(tmp_path: Path) -> None:
    write_parquet(tmp_path / "mnist" / "train-00000-of-00001.parquet", X, Y)
    h.fifo(tmp_path / "mnist" / "test-00000-of-00001.parquet")
    assert read_parquet(tmp_path / "mnist").counts == {"train": 6}


def test_non_ascii_digit_stems_are_not_indices(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pngs", {"train": (X[:2], Y[:2])}, layout="by-label")
    files = sorted((root / "train").rglob("*.png"))
    for n, file in enumerate(files):
        file.rename(file.with_name(f"{chr(0x0661 + n)}{chr(0x0660)}.png"))  # Arabic-Indic 10, 20
    [batch] = read_folder(root).batches
    assert batch.indices.tolist() == [0, 1]  # positions, as for any stem that is not 0-9


def _empty_npz(tmp: Path) -> Path:
    x, y = np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    path = tmp / "mnist.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return path


@pytest.mark.parametrize(
    "build",
    [
        _empty_npz,
        lambda t: h.write_bytes(t / "train.csv", b"label,pixel0,pixel1,pixel2,pixel3\n"),
    ],
)
def test_a_source_of_no_images_is_an_error(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    path = build(tmp_path)
    reader = read_npz if path.suffix == ".npz" else read_csv
    expected = f"No images in {path}: expected at least one image in one split"
    with pytest.raises(EmptySourceError, match=re.escape(expected)):
        reader(path)


def test_a_name_that_is_not_utf8_is_refused_before_reading(tmp_path: Path) -> None:
    path = h.csv_rows(tmp_path, h.pixels_row(1, 4), name=os.fsdecode(b"mnist_train\xff.csv"))
    expected = f"Cannot read {tmp_path}/mnist_train\\xff.csv: its name is not UTF-8 text; rename it"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_csv(path)


# The real MNIST files under the budget ---------------------------------------------------


@pytest.mark.mnist
def test_real_mnist_is_far_below_the_ratio_limit(
    mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the floor taken away, every real file is judged by its ratio: MNIST's gzips
    inflate 2.1 to 4.9 times, far below 100; a limit of 4 refuses the image files."""
    monkeypatch.setattr(budget_module, "RATIO_FLOOR", 0)
    decoded = read_idx(mnist_dir)
    assert sum(_count(decoded)) == 70_000
    with pytest.raises(OverBudgetError, match=re.escape("(5 to 1): more than the 4 to 1")):
        _count(read_idx(mnist_dir, budget=ReadBudget(max_ratio=4)))
