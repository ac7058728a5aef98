"""The command line, through typer's runner: exact output, one-line errors, exit codes."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from builders import idx_bytes, random_digits, write_idx_pair
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.db.engine import make_engine
from catalog.db.schema import head_revision

TINY = Path(__file__).parent / "data" / "tiny"
runner = CliRunner()


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def test_ingest_then_datasets_json(db_url: str) -> None:
    code, out, err = run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "Ingested 5 images into tiny: test 2, train 3"
    code, out, _ = run(db_url, "datasets", "--json")
    [summary] = json.loads(out)
    assert summary["name"] == "tiny"
    assert summary["splits"] == {"test": 2, "train": 3}
    assert summary["genuine"] is None


def test_ingesting_the_same_source_twice_says_so(db_url: str) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    code, out, _ = run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    assert code == 0
    assert out == "Already in the catalog: tiny (test 2, train 3); nothing ingested.\n"


def _hostile_pickle(path: Path, marker: Path) -> Path:
    class Attack:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, (f"touch {marker}",))

    path.write_bytes(gzip.compress(pickle.dumps(Attack(), protocol=2)))
    return path


def _idx_folder(folder: Path, images: bytes, labels: bytes) -> Path:
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return folder


def bad_sources(tmp: Path) -> dict[str, tuple[Path, str]]:
    images = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    labels = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))
    truncated = tmp / "truncated"
    _idx_folder(truncated, images, labels)
    gz = truncated / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-15])
    return {
        "hostile pickle": (
            _hostile_pickle(tmp / "mnist.pkl.gz", tmp / "pwned"),
            "Refusing to unpickle",
        ),
        "truncated gz": (truncated, "truncated"),
        "wrong magic": (
            _idx_folder(tmp / "magic", b"\x00\x01\x08\x03" + images[4:], labels),
            "is not an IDX file: magic number 00010803",
        ),
        "labels of wrong length": (
            _idx_folder(tmp / "length", images, idx_bytes(np.array([1, 2], dtype=np.uint8))),
            "has 3 images but train-labels-idx1-ubyte.gz has 2 labels",
        ),
        "2^31 images": (
            _idx_folder(
                tmp / "huge", b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 28, 28), labels
            ),
            "claims 2,147,483,648 items",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["hostile pickle", "truncated gz", "wrong magic", "labels of wrong length", "2^31 images"],
)
def test_bad_sources_exit_1_with_one_line_and_leave_the_catalog_unchanged(
    db_url: str, tmp_path: Path, case: str
) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    before = run(db_url, "datasets", "--json")[1]
    source, message = bad_sources(tmp_path)[case]
    code, out, err = run(db_url, "ingest", str(source), "--dataset", "bad")
    assert code == 1
    assert out == ""
    assert err.startswith("Error: ")
    assert err.endswith("\n")
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err
    assert run(db_url, "datasets", "--json")[1] == before
    assert not (tmp_path / "pwned").exists()


def test_unknown_format_and_missing_source(db_url: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not a dataset")
    code, _, err = run(db_url, "ingest", str(junk))
    assert code == 1
    assert err == (
        f"Error: Unknown format for {junk}: expected IDX, pickle, npz, CSV, parquet, EMNIST, "
        "QMNIST or a folder of images, "
        "found first bytes 68656c6c6f20776f\n"
    )
    code, _, err = run(db_url, "ingest", str(tmp_path / "nothing-here"))
    assert (code, err) == (1, f"Error: Source not found: {tmp_path / 'nothing-here'}\n")


def test_show_prints_the_digit_and_writes_a_png(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    png = tmp_path / "digit.png"
    code, out, _ = run(db_url, "show", "train:1", "--png", str(png), "--scale", "4")
    assert code == 0
    lines = out.splitlines()
    assert any("█" in line for line in lines)
    assert lines[-2] == (
        "tiny train:1  label 7  sha256 "
        "f1a7a60618ae4494acc47ed9c88352e9ca8eb4e75b5d7d849bac2d342adc54c4"
    )
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (112, 112)


def test_show_errors(db_url: str) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    assert run(db_url, "show", "train:9") == (
        1,
        "",
        "Error: No image train:9 in dataset tiny\n",
    )
    code, _, err = run(db_url, "show", "train-nine")
    assert code == 2
    assert "is not SPLIT:INDEX" in err


def test_query_formats(db_url: str, tmp_path: Path) -> None:
    pixels, labels = random_digits(30, seed=2)
    write_idx_pair(tmp_path / "src", "train", pixels, labels)
    run(db_url, "ingest", str(tmp_path / "src"), "--dataset", "d")
    threes = [i for i in range(30) if labels[i] == 3]
    code, out, _ = run(db_url, "query", "--label", "3", "--format", "ids")
    assert (code, out) == (0, "".join(f"train:{i}\n" for i in threes))
    code, out, _ = run(db_url, "query", "--label", "3", "--format", "jsonl")
    assert [json.loads(line)["index"] for line in out.splitlines()] == threes
    code, out, _ = run(db_url, "query", "--label", "3", "--format", "csv")
    assert out.splitlines()[0] == (
        "dataset,split,index,label,sha256,paths,original_label,excluded,tags,decision,name,meta"
    )
    assert len(out.splitlines()) == len(threes) + 1
    code, out, _ = run(db_url, "count", "--label", "3,5", "--json")
    assert json.loads(out) == {"count": int(np.isin(labels, [3, 5]).sum()), "left_out": 0}
    code, out, _ = run(db_url, "count", "--by", "label", "--json")
    assert json.loads(out) == [
        {"label": label, "name": str(label), "count": int(n)}
        for label, n in enumerate(np.bincount(labels))
        if n
    ]


def test_bad_filters(db_url: str) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    digits = "expected one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert run(db_url, "count", "--label", "11") == (
        1, "", f"Error: Label '11' is not in the label set: {digits}\n"
    )  # fmt: skip
    code, _, err = run(db_url, "count", "--label", "three")
    assert (code, err) == (1, f"Error: Label 'three' is not in the label set: {digits}\n")
    code, _, err = run(db_url, "count", "--split", "val")
    assert (code, err) == (1, "Error: Unknown split 'val': expected one of test, train\n")


def test_export_and_exports(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    out = tmp_path / "out"
    code, stdout, err = run(
        db_url, "export", str(out), "--split", "train", "--list", "caffe", "-j", "1"
    )
    assert (code, err) == (0, "")
    assert stdout == (
        f"Exported 3 images to {out} (3 written, 0 already there); manifest manifest.csv, train.txt\n"
    )
    assert (out / "train.txt").read_text() == (
        "train/000000_1.png 1\ntrain/000001_7.png 7\ntrain/000002_4.png 4\n"
    )
    code, stdout, _ = run(db_url, "exports", "--json")
    [record] = json.loads(stdout)
    assert (record["count"], record["files"], record["layout"]) == (3, 3, "classic")
    code, stdout, _ = run(db_url, "query", "--split", "train", "--format", "json")
    assert json.loads(stdout)[0]["paths"] == [str(out / "train" / "000000_1.png")]


def test_sheet_writes_a_contact_sheet(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    code, out, _ = run(db_url, "sheet", "-o", str(tmp_path / "s.png"), "--cols", "5")
    assert (code, out) == (0, f"Wrote 5 digits to {tmp_path / 's.png'}\n")
    from PIL import Image

    with Image.open(tmp_path / "s.png") as sheet:
        assert sheet.width >= 5 * 56


def test_sheet_says_how_many_excluded_digits_it_left_out(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    assert run(db_url, "exclude", "train:0", "--reason", "smudge")[0] == 0
    code, out, err = run(db_url, "sheet", "-o", str(tmp_path / "s.png"))
    assert (code, out) == (0, f"Wrote 4 digits to {tmp_path / 's.png'}\n")
    assert err == "Left out 1 excluded image (--include-excluded keeps them)\n"
    code, out, err = run(db_url, "sheet", "-o", str(tmp_path / "s.png"), "--include-excluded")
    assert (code, out, err) == (0, f"Wrote 5 digits to {tmp_path / 's.png'}\n", "")


def test_db_current_and_upgrade(db_url: str) -> None:
    head = head_revision(make_engine(db_url))
    code, out, _ = run(db_url, "db", "current")
    assert (code, out) == (
        0,
        f"empty (head {head}: needs upgrade (opened catalogs upgrade themselves))\n",
    )
    assert run(db_url, "db", "upgrade") == (0, f"Catalog at revision {head} (was None)\n", "")
    assert run(db_url, "db", "current")[1] == f"{head} (head {head}: up to date)\n"


def test_catalog_location_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_CATALOG_DB", str(tmp_path / "env.db"))
    result = runner.invoke(app, ["ingest", str(TINY), "--dataset", "tiny"])
    assert result.exit_code == 0
    assert Catalog.open(tmp_path / "env.db").select().count() == 5


def test_catalog_path_in_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "catalog.db"
    result = runner.invoke(app, ["--db", str(target), "datasets"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Cannot create catalog {target}: folder {target.parent} does not exist\n"
    )


def test_unreachable_postgresql_is_a_one_line_error() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    result = runner.invoke(app, ["--db", url, "datasets"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Cannot open catalog postgresql+psycopg://nobody@127.0.0.1:9/none: "
    )
    assert result.stderr.count("\n") == 1


def test_export_json(db_url: str, tmp_path: Path) -> None:
    run(db_url, "ingest", str(TINY), "--dataset", "tiny")
    code, out, _ = run(
        db_url, "export", str(tmp_path / "o"), "--split", "test", "--json", "-j", "1"
    )
    assert code == 0
    data = json.loads(out)
    assert (data["count"], data["written"], data["skipped"]) == (2, 2, 0)
    assert data["manifest"] == str(tmp_path / "o" / "manifest.csv")
