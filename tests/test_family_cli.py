"""Label sets, unlabeled images and per-image metadata, as a user meets them on the command line."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from family_builders import emnist_members, mapping_text, write_csv, write_emnist_zip, write_qmnist
from typer.testing import CliRunner

from catalog.cli import app
from catalog.facts.label_sets import FASHION_MNIST
from catalog.sources.fingerprints import KNOWN_DATASETS, KnownDataset, KnownFile

X, Y = random_digits(40, seed=51)


def run(db: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """IDX files registered as genuine Fashion-MNIST by the md5 of their .gz bytes only."""
    folder = tmp_path / "fashion"
    images, labels = write_idx_pair(folder, "train", X, Y)
    files = tuple(
        KnownFile(
            "fashion-mnist", p.name, "train", role, None, hashlib.md5(p.read_bytes()).hexdigest()
        )
        for p, role in ((images, "images"), (labels, "labels"))
    )
    real = KNOWN_DATASETS["fashion-mnist"]
    monkeypatch.setitem(
        KNOWN_DATASETS,
        "fashion-mnist",
        KnownDataset("fashion-mnist", real.title, real.mirrors, files),
    )
    return folder


def test_fashion_by_gz_md5_gets_its_class_names(db_url: str, fashion: Path, tmp_path: Path) -> None:
    code, out, err = run(db_url, "ingest", str(fashion), "-d", "fashion", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {f["genuine"] for f in report["files"]} == {
        "fashion-mnist/train-images-idx3-ubyte.gz",
        "fashion-mnist/train-labels-idx1-ubyte.gz",
    }
    assert all(f["file_md5"] and f["md5"] != f["file_md5"] for f in report["files"])
    assert report["label_set"] == "fashion-mnist"
    code, out, _ = run(db_url, "datasets")
    assert "10 classes: 0 T-shirt/top, 1 Trouser, 2 Pullover" in out
    code, out, _ = run(db_url, "query", "--label", "Trouser", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in rows] == np.flatnonzero(Y == 1).tolist()
    assert {r["name"] for r in rows} == {"Trouser"}
    code, _, err = run(db_url, "count", "--label", "Sweater")
    assert code == 1
    assert err.startswith(
        "Error: Label 'Sweater' is not in the label set: expected one of 0 (T-shirt/top), 1 (Trouser)"
    )
    code, out, _ = run(db_url, "count", "--by", "label", "--json")
    assert json.loads(out)[0] == {"label": 0, "name": "T-shirt/top", "count": int((Y == 0).sum())}
    code, _, err = run(
        db_url, "export", str(tmp_path / "out"), "--layout", "by-label", "--folder-names", "names"
    )
    assert code == 0, err
    folders = sorted(p.name for p in (tmp_path / "out" / "train").iterdir())
    assert folders == sorted({FASHION_MNIST[y].replace("/", "-") for y in Y.tolist()})
    with (tmp_path / "out" / "manifest.csv").open() as f:
        manifest = list(csv.DictReader(f))
    assert {m["name"] for m in manifest if m["label"] == "1"} == {"Trouser"}


def test_unlabeled_test_csv(db_url: str, tmp_path: Path) -> None:
    write_csv(tmp_path / "kaggle" / "train.csv", X[:30], Y[:30])
    write_csv(tmp_path / "kaggle" / "test.csv", X[30:], None)
    code, out, err = run(db_url, "ingest", str(tmp_path / "kaggle"), "-d", "kaggle")
    assert code == 0, err
    assert "(10 without a label)" in out
    code, out, _ = run(db_url, "count", "--unlabeled")
    assert out == "10\n"
    code, out, _ = run(db_url, "datasets")
    assert "unlabeled 10" in out
    code, _, err = run(db_url, "export", str(tmp_path / "out"), "--layout", "by-label")
    assert code == 0, err
    assert len(list((tmp_path / "out" / "test" / "unlabeled").iterdir())) == 10
    code, out, _ = run(db_url, "query", "--unlabeled", "--format", "csv")
    assert out.splitlines()[1].split(",")[3] == ""  # no label
    code, _, err = run(db_url, "audit", "--check", "balance")
    assert "Traceback" not in err


def qmnist_table(n: int) -> np.ndarray:
    table = np.zeros((n, 8), dtype=np.int32)
    table[:, 0] = Y[:n]
    table[:, 2] = 3000 + np.arange(n) % 8  # eight writers
    table[:, 5] = 10_000 + np.arange(n)
    return table


def test_qmnist_metadata_where_group_by_and_writer_disjoint_holdout(
    db_url: str, tmp_path: Path
) -> None:
    write_qmnist(tmp_path / "q", "train", X, qmnist_table(40))
    assert run(db_url, "ingest", str(tmp_path / "q"))[0] == 0
    code, out, _ = run(db_url, "query", "--where", "writer=3003", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in rows] == [3, 11, 19, 27, 35]
    assert rows[0]["meta"]["nist_index"] == "10003"
    code, out, _ = run(
        db_url, "query", "--group-by", "writer", "--per-group", "2", "--format", "jsonl"
    )
    writers = [json.loads(line)["meta"]["writer"] for line in out.splitlines()]
    assert sorted(writers) == sorted([str(3000 + w) for w in range(8)] * 2)
    out_dir = tmp_path / "split"
    args = [
        "export",
        str(out_dir),
        "--split",
        "train",
        "--holdout-by",
        "writer",
        "--holdout",
        "0.25",
        "--seed",
        "0",
    ]
    code, out, err = run(db_url, *args)
    assert code == 0, err
    seen = {}
    for part in ("train", "val"):
        with (out_dir / part / "manifest.csv").open() as f:
            seen[part] = {
                m["metadata"].split("writer=")[1].split(";")[0] for m in csv.DictReader(f)
            }
    assert len(seen["val"]) == 2
    assert len(seen["train"]) == 6
    assert not seen["train"] & seen["val"]
    code, out, _ = run(db_url, "exports", "--json")
    recorded = [e["selection"] for e in json.loads(out)]
    assert {(s["holdout_by"], s["holdout"], s["holdout_part"]) for s in recorded} == {
        ("writer", 0.25, "train"),
        ("writer", 0.25, "val"),
    }
    again = run(db_url, *args, "--json")  # the same seed: the same split, nothing to write
    assert json.loads(again[1])["val"]["written"] == 0


def test_emnist_letters_by_letter(db_url: str, tmp_path: Path) -> None:
    letters = Y % 26 + 1
    mapping = mapping_text({n: (64 + n, 96 + n) for n in range(1, 27)})
    zipped = write_emnist_zip(
        tmp_path / "gzip.zip",
        {"letters": (emnist_members("letters", {"train": (X, letters)}), mapping)},
    )
    code, out, err = run(db_url, "ingest", str(zipped), "--subset", "letters")
    assert code == 0, err
    assert "into emnist-letters" in out
    code, out, _ = run(db_url, "count", "--label", "a")
    assert out == f"{int((letters == 1).sum())}\n"
    code, _, err = run(db_url, "ingest", str(zipped), "--subset", "nope")
    assert code == 1
    assert "No EMNIST split 'nope'" in err


def test_subset_on_a_source_that_has_none_is_an_error(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    write_idx_pair(folder, "train", X, Y)
    code, _, err = run(db_url, "ingest", str(folder), "--subset", "letters")
    assert code == 1
    assert "--subset letters does not apply" in err


def test_gz_content_digest_is_recorded_beside_the_file_digest(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    images, _ = write_idx_pair(folder, "train", X, Y)
    _, out, _ = run(db_url, "ingest", str(folder), "--json")
    record = next(f for f in json.loads(out)["files"] if f["uri"] == str(images.resolve()))
    assert record["file_md5"] == hashlib.md5(images.read_bytes()).hexdigest()
    assert record["md5"] == hashlib.md5(gzip.decompress(images.read_bytes())).hexdigest()


def test_sheet_captions_name_the_class(db_url: str, fashion: Path, tmp_path: Path) -> None:
    from catalog.export.sheets import _caption
    from catalog.facts.label_sets import built_in

    fashion_set = built_in("fashion-mnist")
    assert fashion_set is not None
    assert _caption(fashion_set, 1) == "1 Trouser"
    assert _caption(fashion_set, -1) == "-"
    assert run(db_url, "ingest", str(fashion), "-d", "fashion")[0] == 0
    code, _, err = run(db_url, "sheet", "-o", str(tmp_path / "s.png"), "--label", "Trouser")
    assert code == 0, err
    assert (tmp_path / "s.png").stat().st_size > 0
