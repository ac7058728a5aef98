"""The IDX reader: headers checked before anything is read, data streamed."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from builders import idx_bytes, random_digits, traced_peak, write_idx_pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import CatalogError, SourceFormatError
from catalog.sources import BATCH_SIZE, detect_format
from catalog.sources.idx import read_idx

TINY = Path(__file__).parent / "data" / "tiny"
# sha256 of the decompressed tiny files, pinned (pooch's TINY_DATA_HASHES idea)
TINY_HASHES = {
    "train images": "3612bb8c86558baf1ba5f7399522644c1ea1f17472d3b834716349fd1257f20f",
    "train labels": "15a355ca2b29228a5761ad90c81409c8593c6a351a1cf5c58d53110e930d5d26",
    "test images": "3a60648bdc30fc95208dbec45d19d0ad5a0ff0ffcae2010f3f06976331b0f6b3",
    "test labels": "35d1ec7b4b54088bd9bd0762891523b33539014bf07c58a48bec90dacd79c6b5",
}


def read_all(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    decoded = read_idx(path)
    out: dict[str, list[list[np.ndarray]]] = {}
    for batch in decoded.batches:
        parts = out.setdefault(batch.split, [[], [], []])
        parts[0].append(batch.indices)
        parts[1].append(batch.labels)
        parts[2].append(batch.pixels)
    return {k: tuple(np.concatenate(p) for p in v) for k, v in out.items()}  # type: ignore[misc]


def test_tiny_fixture_decodes_with_pinned_hashes() -> None:
    decoded = read_idx(TINY)
    assert decoded.counts == {"test": 2, "train": 3}
    for _ in decoded.batches:
        pass
    assert {f.role: f.sha256 for f in decoded.files} == TINY_HASHES
    assert all(f.format == "idx.gz" for f in decoded.files)


@pytest.mark.parametrize(
    ("gz", "dotted"), [(True, False), (False, False), (False, True), (True, True)]
)
def test_raw_gzipped_and_dotted_names_decode_to_the_same_arrays(
    tmp_path: Path, gz: bool, dotted: bool
) -> None:
    pixels, labels = random_digits(10, seed=1)
    write_idx_pair(tmp_path, "train", pixels, labels, gz=gz, dotted=dotted)
    write_idx_pair(tmp_path, "t10k", pixels[:4], labels[:4], gz=gz, dotted=dotted)
    data = read_all(tmp_path)
    assert np.array_equal(data["train"][2], pixels)
    assert np.array_equal(data["train"][1], labels)
    assert np.array_equal(data["train"][0], np.arange(10))
    assert np.array_equal(data["test"][2], pixels[:4])


def test_one_images_file_finds_its_labels_beside_it(tmp_path: Path) -> None:
    pixels, labels = random_digits(5, seed=2)
    images, _ = write_idx_pair(tmp_path, "t10k", pixels, labels)
    write_idx_pair(tmp_path, "train", pixels, labels)
    assert detect_format(images) == "idx"
    assert list(read_all(images)) == ["test"]


def test_batches_stream_large_files_in_blocks(tmp_path: Path) -> None:
    pixels = np.zeros((5000, 28, 28), dtype=np.uint8)
    pixels[:, 0, 0] = np.arange(5000) % 256
    write_idx_pair(tmp_path, "train", pixels, np.zeros(5000, dtype=np.uint8))
    batches = list(read_idx(tmp_path).batches)
    assert [len(b.indices) for b in batches] == [4096, 904]
    assert batches[1].indices[0] == 4096
    assert batches[1].pixels[0, 0, 0] == 4096 % 256


def _pair(tmp_path: Path, images: bytes, labels: bytes, gz: bool = False) -> Path:
    suffix = ".gz" if gz else ""
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(
        gzip.compress(images) if gz else images
    )
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(
        gzip.compress(labels) if gz else labels
    )
    return tmp_path


GOOD_IMAGES = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
GOOD_LABELS = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (b"\x01\x02\x08\x03" + GOOD_IMAGES[4:], GOOD_LABELS, "is not an IDX file: magic number 01020803"),
        (b"\x00\x00\x07\x03" + GOOD_IMAGES[4:], GOOD_LABELS, "unknown IDX type code 0x07"),
        (GOOD_IMAGES[:-10], GOOD_LABELS, "has 2,358 bytes but its header (3x28x28) implies 2,368"),
        (GOOD_IMAGES, idx_bytes(np.array([1, 2], dtype=np.uint8)), "has 3 images but train-labels-idx1-ubyte has 2 labels"),
        (b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 28, 28), GOOD_LABELS, "claims 2,147,483,648 items"),
        (b"\x00\x00\x08\x03" + struct.pack(">III", 3, 0, 28), GOOD_LABELS, "claims images of 0x28"),
        (b"", GOOD_LABELS, "is truncated: expected 4 bytes of the IDX magic number, found 0"),
        (idx_bytes(np.zeros((3, 28), dtype=np.uint8)), GOOD_LABELS, "should hold uint8 images (type 0x08, 3 dims)"),
    ],
)  # fmt: skip
def test_bad_raw_headers_are_refused_before_any_batch(
    tmp_path: Path, images: bytes, labels: bytes, message: str
) -> None:
    folder = _pair(tmp_path, images, labels)
    # read_idx itself refuses: no Decoded, so no batch can ever be yielded.
    with pytest.raises(SourceFormatError, match=re.escape(message)):
        read_idx(folder)


def test_labels_past_nine_are_kept_for_other_label_sets(tmp_path: Path) -> None:
    # EMNIST and Kuzushiji-49 use the same label files with more than ten classes.
    labels = idx_bytes(np.array([1, 2, 12] * (BATCH_SIZE // 3 + 1), dtype=np.uint8))
    count = len(labels) - 8
    images = idx_bytes(np.zeros((count, 28, 28), dtype=np.uint8))
    decoded = read_idx(_pair(tmp_path, images, labels))
    assert next(decoded.batches).labels[:3].tolist() == [1, 2, 12]


def test_gzip_length_mismatch_found_while_streaming(tmp_path: Path) -> None:
    folder = _pair(tmp_path, GOOD_IMAGES[:-100], GOOD_LABELS, gz=True)
    decoded = read_idx(folder)  # a gzip's length is only known at its end
    with pytest.raises(
        SourceFormatError, match=r"is truncated: expected 2,352 bytes of images 0-2"
    ):
        list(decoded.batches)


def test_truncated_gzip_is_a_format_error(tmp_path: Path) -> None:
    folder = _pair(tmp_path, GOOD_IMAGES, GOOD_LABELS, gz=True)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    expected = f"Cannot read {path}: corrupt or truncated gzip data while reading images 0-2"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        list(read_idx(folder).batches)


def test_gz_name_that_is_not_gzip_is_read_by_content(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(GOOD_IMAGES)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(GOOD_LABELS)
    assert read_all(tmp_path)["train"][2].shape == (3, 28, 28)


def test_gz_that_is_garbage_after_the_magic_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(GOOD_LABELS))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    expected = (
        f"Cannot read {path}: corrupt or truncated gzip data while reading the IDX magic number"
    )
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        list(read_idx(tmp_path).batches)


def test_missing_labels_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(GOOD_IMAGES)
    expected = (
        f"No labels file found beside {tmp_path / 'train-images-idx3-ubyte'} "
        "(looked for train-labels-idx1-ubyte)"
    )
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_idx(tmp_path)


@settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=3000), gz=st.booleans())
def test_random_bytes_give_a_result_or_a_catalog_error(
    tmp_path: Path, data: bytes, gz: bool
) -> None:
    folder = tmp_path / "random"
    folder.mkdir(exist_ok=True)
    _pair(folder, data, GOOD_LABELS, gz=gz)
    error = ""
    with traced_peak() as peak:
        try:
            decoded = read_idx(folder)
            total = sum(len(b.indices) for b in decoded.batches)
        except CatalogError as exc:
            error = str(exc)
            total = None
    assert "MemoryError" not in error  # a large allocation that failed
    assert peak[0] < 16 * 2**20  # a few KB of file must not cost more
    assert total is None or total == decoded.counts["train"]


@settings(
    max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    position=st.integers(min_value=0, max_value=len(GOOD_IMAGES) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=len(GOOD_IMAGES)),
)
def test_mutated_headers_give_a_result_or_a_catalog_error(
    tmp_path: Path, position: int, value: int, cut: int
) -> None:
    mutated = bytearray(GOOD_IMAGES[:cut] if cut < 20 else GOOD_IMAGES)
    if position < len(mutated):
        mutated[position] = value
    folder = tmp_path / "mutated"
    folder.mkdir(exist_ok=True)
    _pair(folder, bytes(mutated), GOOD_LABELS)
    error = ""
    with traced_peak() as peak:
        try:
            decoded = read_idx(folder)
            arrays = [b.pixels for b in decoded.batches]
        except CatalogError as exc:
            error = str(exc)
            arrays = None
    assert "MemoryError" not in error  # a large allocation that failed
    assert peak[0] < 16 * 2**20
    assert arrays is None or sum(len(a) for a in arrays) == 3
