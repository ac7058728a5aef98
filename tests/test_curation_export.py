"""Exports honour decisions: names, folders, lists and manifest use the current
label; a re-run after decisions moves and removes files and records it all."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app

runner = CliRunner()


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def manifest(root: Path) -> dict[str, dict[str, str]]:
    with (root / "manifest.csv").open(encoding="utf-8") as handle:
        return {f"{r['split']}:{r['index']}": r for r in csv.DictReader(handle)}


def files_on_disk(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.png")}


def test_by_label_export_moves_relabelled_and_drops_excluded(
    tiny_catalog: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    tiny_catalog.select().export(out, layout="by-label", lists=["caffe"], jobs=1)
    assert "train/7/000001.png" in files_on_disk(out)
    tiny_catalog.relabel("train:1", 2)
    tiny_catalog.exclude("test:0", reason="smudge")
    [record] = tiny_catalog.exports()
    assert record["decisions_since"] == 2
    result = tiny_catalog.select().export(out, layout="by-label", lists=["caffe"], jobs=1)
    assert (result.count, result.renamed, result.removed, result.left_out) == (4, 1, 1, 1)
    assert files_on_disk(out) == {
        "train/1/000000.png", "train/2/000001.png", "train/4/000002.png", "test/1/000001.png",
    }  # fmt: skip
    assert (out / "train.txt").read_text().splitlines()[1] == "train/2/000001.png 2"
    assert "test/7/000000.png" not in (out / "test.txt").read_text()
    rows = manifest(out)
    assert (rows["train:1"]["label"], rows["train:1"]["original_label"]) == ("2", "7")
    assert rows["train:1"]["decision"] == "1"
    assert rows["train:0"]["decision"] == ""
    assert tiny_catalog.exports()[0]["decisions_since"] == 0
    assert tiny_catalog.audit(checks=["files"]).findings == []
    # --original-labels exports by the source's labels again (and keeps its own record)
    tiny_catalog.select(original_labels=True, excluded="include").export(
        out, layout="by-label", jobs=1
    )
    assert "train/7/000001.png" in files_on_disk(out)
    assert "train/2/000001.png" not in files_on_disk(out)
    assert "test/7/000000.png" in files_on_disk(out)
    assert tiny_catalog.audit(checks=["files"]).findings == []


def test_the_issue_session_on_real_mnist(mnist_catalog: Catalog, tmp_path: Path) -> None:
    """relabel test:1530 to 7, exclude test:4497, tag 20 images, export the test
    split; relabel back, re-export: the file moves back, audit --check files is clean."""
    url = mnist_catalog.engine.url.render_as_string(hide_password=False)
    out = tmp_path / "export"
    first = len(mnist_catalog.decisions())
    try:
        assert run(url, "relabel", "test:1530", "7", "--note", "the top looks closed")[0] == 0
        assert run(url, "exclude", "test:4497", "--reason", "not a digit")[0] == 0
        code, said, _ = run(url, "tag", "ambiguous", "--split", "test", "--label", "5",
                            "--limit", "20")  # fmt: skip
        assert (code, said.endswith("20 tagged\n")) == (0, True)
        code, said, err = run(url, "export", str(out), "--split", "test", "--list", "csv",
                              "--jobs", "1")  # fmt: skip
        assert code == 0, err
        assert said.startswith("Exported 9,999 images")
        assert err.endswith("Left out 1 excluded image (--include-excluded keeps them)\n")
        assert (out / "test" / "001530_7.png").exists()
        assert not (out / "test" / "001530_8.png").exists()
        rows = manifest(out)
        assert (rows["test:1530"]["label"], rows["test:1530"]["original_label"]) == ("7", "8")
        assert "test:4497" not in rows
        assert not list((out / "test").glob("004497_*"))
        assert "004497" not in (out / "test.csv").read_text()
        assert mnist_catalog.select(tag="ambiguous").count() == 20

        assert run(url, "relabel", "test:1530", "8", "--note", "no, an 8")[0] == 0
        code, said, _ = run(url, "exports", "--json")
        assert json.loads(said)[0]["decisions_since"] == 1
        code, said, _ = run(url, "export", str(out), "--split", "test", "--list", "csv")
        assert "1 moved to a new label" in said
        assert (out / "test" / "001530_8.png").exists()
        assert not (out / "test" / "001530_7.png").exists()
        assert manifest(out)["test:1530"]["original_label"] == "8"
        code, said, _ = run(url, "audit", "--check", "files")
        assert code == 0
        assert "files (" in said
        assert "✓ nothing found" in said
    finally:  # the catalog is shared by other tests: take the decisions back
        for record in reversed(mnist_catalog.decisions()[first:]):
            if record.undoes is None:
                mnist_catalog.undo(record.id)
