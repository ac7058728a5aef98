"""Versions (issue 23): freeze, give back byte for byte, diff, move between catalogs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from builders import write_idx_pair
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.errors import VersionError

runner = CliRunner()
OUTPUTS = ("folder", "idx", "npz", "parquet", "webdataset")


def write_sources(folder: Path, seed: int = 0, changed: int | None = None) -> Path:
    """30 train and 10 test random digits as IDX files; ``changed``: that train image's
    pixels inverted (a re-ingest of other pixels at the same place)."""
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    if changed is not None:
        train[changed] = 255 - train[changed]
    write_idx_pair(folder, "train", train, np.arange(30) % 10)
    write_idx_pair(folder, "t10k", test, np.arange(10) % 10)
    return folder


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return write_sources(tmp_path / "src")


@pytest.fixture
def digits(catalog: Catalog, sources: Path) -> Catalog:
    catalog.ingest(sources, dataset="digits")
    return catalog


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def cli(db_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("output", OUTPUTS)
def test_export_of_a_version_after_relabel_and_exclude_is_byte_identical(
    digits: Catalog, tmp_path: Path, output: str
) -> None:
    info = digits.freeze("v1", note="first")
    before = digits.version("v1").export(tmp_path / "before", output=output, jobs=1)
    digits.relabel("train:3", 7)
    digits.exclude(["train:4", "test:0"], reason="smudged")
    assert digits.select().count() == 38  # the catalog moved on ...
    after = digits.version("v1").export(tmp_path / "after", output=output, jobs=1)
    (record,) = [e for e in digits.exports() if e["id"] == before.export_id]
    assert record["decisions_since"] == 0  # decisions do not change a version
    assert after.count == before.count == 40  # ... the version did not
    old, new = files_of(tmp_path / "before"), files_of(tmp_path / "after")
    assert old.keys() == new.keys()
    assert [name for name in old if old[name] != new[name]] == []
    manifest = new["manifest.csv"].decode().splitlines()
    assert manifest[0].endswith(",version,content_id")
    assert all(line.endswith(f",v1,{info.content_id}") for line in manifest[1:])
    line_3 = next(line for line in manifest if ",digits,train,3," in line)
    assert line_3.split(",")[4] == "3"  # the frozen label, not the 7 decided since
    if output == "parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(tmp_path / "after" / "train.parquet").metadata
        assert json.loads(meta[b"mnist_catalog"]) == {
            "version": "v1",
            "content_id": info.content_id,
        }
    if output == "npz":
        with np.load(tmp_path / "after" / "digits.npz") as npz:
            assert npz["version"].tolist() == ["v1", info.content_id]
            assert npz["y_train"][3] == 3
    if output == "webdataset":
        data = (tmp_path / "after" / "train-000000.tar").read_bytes()
        assert f'"version": "v1", "content_id": "{info.content_id}"'.encode() in data


def test_a_plain_export_made_at_the_freeze_has_the_same_images(
    digits: Catalog, tmp_path: Path
) -> None:
    plain = digits.select().export(tmp_path / "plain", output="npz")
    digits.freeze("v1")
    digits.relabel("train:3", 7)
    digits.version("v1").export(tmp_path / "v1", output="npz")
    with np.load(plain.files[0]) as a, np.load(tmp_path / "v1" / "digits.npz") as b:
        for key in ("x_train", "y_train", "x_test", "y_test"):
            assert np.array_equal(a[key], b[key]), key


def test_diff_names_exactly_the_changed_images(digits: Catalog, db_url: str) -> None:
    digits.freeze("v1", digits.select(split="train", index=(0, 20)))
    digits.relabel("train:3", 7)
    digits.relabel("train:9", "5")
    digits.exclude("train:4", reason="smudged")
    digits.freeze("v2", digits.select(split="train", index=(0, 25)), by="ada")
    diff = digits.diff("v1", "v2")
    assert [(i.split, i.index) for i in diff.added] == [("train", n) for n in range(20, 25)]
    assert [(i.split, i.index, i.label) for i in diff.removed] == [("train", 4, 4)]
    assert [(i.index, i.old_label, i.label) for i in diff.relabelled] == [(3, 3, 7), (9, 9, 5)]
    assert diff.by("added", "label") == {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1}
    assert diff.counts == {"a": {"train": 20}, "b": {"train": 24}}
    # current: v1's selection as it stands now
    now = digits.diff("v1", "current")
    assert [i.index for i in now.removed] == [4]
    assert len(now.relabelled) == 2
    assert not now.added
    code, out, _ = cli(db_url, "diff", "v1", "v2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["images"]["relabelled"] == [
        {
            "split": "train",
            "index": 3,
            "sha256": diff.relabelled[0].sha256,
            "label": 7,
            "old_label": 3,
        },
        {
            "split": "train",
            "index": 9,
            "sha256": diff.relabelled[1].sha256,
            "label": 5,
            "old_label": 9,
        },
    ]
    assert [(i["split"], i["index"]) for i in data["images"]["removed"]] == [("train", 4)]
    assert data["added"]["by_split"] == {"train": 5}
    code, out, _ = cli(db_url, "diff", "v1", "v2")
    assert "relabelled: 2" in out
    assert "  train:3  3 -> 7" in out
    assert digits.diff("v2", "v2").same


def test_versions_list_and_narrowing_within_a_version(
    digits: Catalog, db_url: str, tmp_path: Path
) -> None:
    digits.freeze("v1", note="all forty", by="ada")
    digits.relabel("train:3", 7)
    code, out, _ = cli(db_url, "versions", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["name"] == "v1"
    assert len(row["content_id"]) == 64
    assert row["splits"] == {"test": 10, "train": 30}
    assert (row["note"], row["by"]) == ("all forty", "ada")
    assert "v1  " + row["content_id"][:16] in cli(db_url, "versions")[1]
    # other filters narrow within the version, by its frozen labels
    assert digits.select(version="v1", labels=3).count() == 4
    assert digits.select(labels=3).count() == 3
    code, out, _ = cli(db_url, "count", "--version", "v1", "-l", "7", "--json")
    assert code == 0
    assert "4" in out
    x, y = digits.version("v1").arrays()
    assert x.shape == (40, 28, 28)
    assert y[10 + 3] == 3
    data = digits.version("v1").dataset()
    assert len(data) == 40
    assert data[13][1] == 3  # the frozen label
    assert np.array_equal(data[13][0], x[13])
    assert digits.select(version="v1", labels=3).dataset()[1][1] == 3
    hf = digits.version("v1").to_hf()
    assert hf.num_rows == 40
    assert hf[13]["label"] == 3
    sheet = tmp_path / "threes.png"
    code, out, _ = cli(db_url, "sheet", "-o", str(sheet), "--version", "v1", "-l", "3")
    assert (code, out) == (0, f"Wrote 4 digits to {sheet}\n")
    code, out, _ = cli(db_url, "query", "--version", "v1", "-s", "train", "-l", "3", "-f", "ids")
    assert code == 0
    assert len(out.split()) == 3


def test_two_catalogs_that_ingested_the_same_files_give_the_same_content_id(
    digits: Catalog, sources: Path, tmp_path: Path
) -> None:
    with Catalog.open(tmp_path / "other.db") as other:
        other.ingest(sources, dataset="digits")
        here, there = digits.freeze("v1"), other.freeze("mine")
        assert here.content_id == there.content_id
        # the documented bytes: <dataset>\t<split>\t<index>\t<sha256>\t<label>\n, sorted
        rows = sorted((r.split.encode(), r.index, r.sha256, r.label) for r in other.select().rows())
        text = "".join(f"digits\t{s.decode()}\t{i}\t{h}\t{lb}\n" for s, i, h, lb in rows)
        assert hashlib.sha256(text.encode()).hexdigest() == here.content_id
        other.relabel("train:0", 1)
        assert other.freeze("relabelled").content_id != here.content_id
        other.exclude("train:1", reason="x")
        assert other.freeze("smaller").content_id not in {here.content_id}


def test_a_version_refuses_an_image_whose_pixels_were_replaced(
    digits: Catalog, sources: Path, tmp_path: Path, db_url: str
) -> None:
    digits.freeze("v1")
    digits.freeze("tests", digits.select(split="test"))
    digits.ingest(sources, dataset="digits", replace=True)  # new rows, the same pixels
    assert len(digits.version("v1").export(tmp_path / "same", output="npz").files) == 1
    digits.ingest(write_sources(tmp_path / "new", changed=6), dataset="digits", replace=True)
    with pytest.raises(VersionError, match=re.escape("holds image train/6 with pixels")):
        digits.version("v1").export(tmp_path / "out", output="npz")
    assert not (tmp_path / "out" / "digits.npz").exists()
    code, _, err = cli(db_url, "export", str(tmp_path / "out2"), "--version", "v1")
    assert code == 1
    assert err.startswith("Error: Version 'v1' holds image train/6 with pixels ")
    assert err.count("\n") == 1
    assert "replaced by ingest --replace" in err
    assert digits.version("tests").count() == 10  # images it holds are all still there
    assert digits.select(version="v1", split="test").count() == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("freeze", "v1"), "Error: Version 'v1' already exists: versions are never edited, pick a new name\n"),
        (("freeze", "../x"), "Error: Bad version name '../x': use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', and not 'current'\n"),
        (("freeze", "current"), "Error: Bad version name 'current': use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', and not 'current'\n"),
        (("diff", "v1", "nope"), "Error: No version named 'nope' in the catalog (versions: v1)\n"),
        (("export", "OUT", "--version", "nope"), "Error: No version named 'nope' in the catalog (versions: v1)\n"),
        (("versions", "export", "../x", "f.json"), "Error: Bad version name '../x': use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.', and not 'current'\n"),
        (("freeze", "v2", "-l", "3", "--index", "0:1"), "Error: The selection holds no images: version 'v2' would be empty\n"),
        (("diff", "current", "current"), "Error: diff needs at least one version: both sides are 'current'\n"),
    ],
)  # fmt: skip
def test_version_name_errors_are_one_line(
    digits: Catalog, db_url: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    digits.freeze("v1")
    args = tuple(str(tmp_path / a) if a in ("OUT", "f.json") else a for a in args)
    code, _out, err = cli(db_url, *args)
    assert (code, err) == (1, message)
    assert [v.name for v in digits.versions()] == ["v1"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_versions_export_import_round_trip(
    digits: Catalog, sources: Path, tmp_path: Path, db_url: str, suffix: str
) -> None:
    digits.relabel("train:3", 7)
    info = digits.freeze("v1", digits.select(split="train", per_label=2, seed=3), note="n")
    path = tmp_path / f"v1{suffix}"
    code, out, _ = cli(db_url, "versions", "export", "v1", str(path))
    assert (code, out) == (0, f"Wrote version v1 (20 images) to {path}\n")
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    with Catalog.open(tmp_path / "other.db") as other:
        other.ingest(sources, dataset="digits")
    code, out, err = cli(other_db, "versions", "import", str(path))
    assert code == 0, err
    assert out.endswith(info.content_id + "\n")
    with Catalog.open(tmp_path / "other.db") as other:
        (imported,) = other.versions()
        assert (imported.name, imported.count, imported.note) == ("v1", 20, "n")
        x_here, y_here = digits.version("v1").arrays()
        x_there, y_there = other.version("v1").arrays()
        assert np.array_equal(x_here, x_there)
        assert np.array_equal(y_here, y_there)
        assert 7 in y_there.tolist()  # the label decided in the first catalog travelled
    code, _, err = cli(other_db, "versions", "import", str(path))
    assert (code, err) == (
        1,
        "Error: Version 'v1' already exists: versions are never edited, pick a new name\n",
    )


def test_versions_import_refuses_other_pixels_and_a_tampered_file(
    digits: Catalog, tmp_path: Path, db_url: str
) -> None:
    digits.freeze("v1")
    digits.export_version("v1", tmp_path / "v1.json")
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    with Catalog.open(tmp_path / "other.db") as other:
        other.ingest(write_sources(tmp_path / "changed", changed=2), dataset="digits")
    code, _, err = cli(other_db, "versions", "import", str(tmp_path / "v1.json"))
    assert code == 1
    assert err.startswith("Error: Version 'v1': image digits/train/2 has pixels ")
    assert err.count("\n") == 1
    data = json.loads((tmp_path / "v1.json").read_text())
    data["images"][0][3] = 9
    (tmp_path / "bad.json").write_text(json.dumps(data))
    code, _, err = cli(other_db, "versions", "import", str(tmp_path / "bad.json"))
    assert code == 1
    assert "its images give content id" in err
    assert err.count("\n") == 1
    with Catalog.open(tmp_path / "other.db") as other:
        assert other.versions() == []
