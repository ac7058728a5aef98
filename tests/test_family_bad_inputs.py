"""Bad inputs for the MNIST-family readers, through the command line: one `Error:`
line naming the file (and line, for CSV), exit 1, the catalog unchanged."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from builders import idx_bytes, random_digits
from clients import assert_ingest_refused
from family_builders import (
    emnist_members,
    mapping_text,
    write_csv,
    write_emnist_zip,
    write_kuzushiji,
    write_parquet,
    write_qmnist,
)

X, Y = random_digits(6, seed=31)


def csv_text(text: str, name: str = "train.csv") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_text(text)
        return path

    return build


def _csv_with(row: int, values: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = write_csv(tmp / "mnist_train.csv", X, Y, header="none")
        lines = path.read_text().splitlines()
        lines[row] = values
        path.write_text("\n".join(lines) + "\n")
        return path

    return build


def _parquet_bad_png(tmp: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_parquet(tmp / "train-00000-of-00001.parquet", X, Y)
    table = pq.read_table(path)
    images = table.column("image").to_pylist()
    images[2]["bytes"] = images[2]["bytes"][:30]
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = table.set_column(0, "image", pa.array(images, type=struct))
    pq.write_table(table, path)
    return path


def _parquet_no_image(tmp: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "train.parquet"
    pq.write_table(pa.table({"label": pa.array([1, 2])}), path)
    return path


def _emnist_unmapped_label(tmp: Path) -> Path:
    members = emnist_members("letters", {"train": (X, Y + 30)})
    return write_emnist_zip(
        tmp / "gzip.zip", {"letters": (members, mapping_text({n: (64 + n,) for n in range(1, 27)}))}
    )


def _emnist_two_subsets(tmp: Path) -> Path:
    digits = mapping_text({n: (48 + n,) for n in range(10)})
    return write_emnist_zip(
        tmp / "gzip.zip",
        {
            "digits": (emnist_members("digits", {"train": (X, Y)}), digits),
            "mnist": (emnist_members("mnist", {"train": (X, Y)}), digits),
        },
    )


def _emnist_count_mismatch(tmp: Path) -> Path:
    members = emnist_members("mnist", {"train": (X, Y)})
    members["emnist-mnist-train-labels-idx1-ubyte.gz"] = gzip.compress(
        idx_bytes(Y[:4].astype(np.uint8))
    )
    return write_emnist_zip(tmp / "gzip.zip", {"mnist": (members, "0 48\n")})


def _qmnist_labels_not_n_by_8(tmp: Path) -> Path:
    write_qmnist(tmp / "q", "train", X, np.zeros((6, 8), dtype=np.int32))
    (tmp / "q" / "qmnist-train-labels-idx2-int.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((6, 5), dtype=np.int32)))
    )
    return tmp / "q"


def _qmnist_missing_labels(tmp: Path) -> Path:
    write_qmnist(tmp / "q", "test", X, np.zeros((6, 8), dtype=np.int32))
    (tmp / "q" / "qmnist-test-labels-idx2-int.gz").unlink()
    return tmp / "q"


def _kuzushiji_lengths(tmp: Path) -> Path:
    write_kuzushiji(tmp / "k", "kmnist", "train", X, Y[:4].astype(np.uint8))
    return tmp / "k"


def _kuzushiji_object_array(tmp: Path) -> Path:
    write_kuzushiji(tmp / "k", "kmnist", "train", X, Y.astype(np.uint8))
    with (tmp / "k" / "kmnist-train-labels.npz").open("wb") as out:
        np.savez(out, np.array([object()] * 6, dtype=object))
    return tmp / "k"


HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))
CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "csv value above 255": (_csv_with(3, "5," + ",".join(["0"] * 783 + ["300"])), "line 4: pixel value 300 is outside 0-255"),
    "csv ragged row": (_csv_with(2, "5,0,0"), "line 3: expected 785 values, found 3"),
    "csv not an integer": (_csv_with(1, "5," + ",".join(["0"] * 782 + ["x", "0"])), "line 2: expected an integer in column 784, found 'x'"),
    "csv non-square pixel count": (csv_text("label," + ",".join(f"pixel{i}" for i in range(780)) + "\n"), "line 1: expected a square number of pixel columns"),
    "csv headerless non-square": (csv_text("5," + ",".join(["0"] * 700) + "\n", "mnist_train.csv"), "line 1: expected a label and a square number"),
    "csv negative label": (csv_text(HEADER + "\n-3," + ",".join(["0"] * 784) + "\n"), "line 2: label -3 is negative"),
    "parquet truncated png": (_parquet_bad_png, "row 2"),
    "parquet without an image column": (_parquet_no_image, "has no image column"),
    "parquet that is not parquet": (lambda t: csv_text("PAR1 garbage", "train.parquet")(t), "train.parquet"),
    "emnist label not in the mapping": (_emnist_unmapped_label, "which the EMNIST mapping does not list"),
    "emnist zip with two splits": (_emnist_two_subsets, "choose one with --subset"),
    "emnist counts disagree": (_emnist_count_mismatch, "has 6 images but"),
    "qmnist labels not N x 8": (_qmnist_labels_not_n_by_8, "should hold extended labels as int32 N x 8"),
    "qmnist missing labels": (_qmnist_missing_labels, "but not its pair"),
    "kuzushiji lengths disagree": (_kuzushiji_lengths, "expected 6 integer labels"),
    "kuzushiji object array": (_kuzushiji_object_array, "kmnist-train-labels.npz"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_family_input_is_one_line_exit_1_and_the_catalog_is_unchanged(
    db_url: str, tmp_path: Path, case: str
) -> None:
    build, fragment = CASES[case]
    assert_ingest_refused(db_url, build(tmp_path), [fragment])
