"""Identify through the command line and the Python API: the summary, the JSON, the
per-image metadata it stores (query, --where, export manifests) and the audit's use of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_image_folder, write_pickle_gz
from old_recipe import Arrays, letter, write_old_recipe_folder
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app

runner = CliRunner()


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db_url, *args])
    return result.exit_code, result.stdout, result.stderr


def ids(db_url: str, *where: str) -> list[str]:
    args = [a for w in where for a in ("--where", w)]
    code, out, err = run(db_url, "query", "-d", "old", *args, "-f", "ids")
    assert code == 0, err
    return out.split()


@pytest.mark.mnist
def test_identify_old_recipe_reports_the_relabel_and_stores_per_image(
    old_recipe: Path, db_url: str, tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(db_url, "ingest", str(old_recipe), "-d", "old")[0] == 0
    code, out, err = run(db_url, "identify", "-d", "old")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "old against mnist: 2,000 images, 0 exact, 1,998 lossy, 2 none"
    assert lines[1] == (
        "  test 0-297 = mnist test 0-297 (lossy); test: 2 images not in mnist (none); "
        "train 0-1,399 = mnist train 0-1,399 (lossy); "
        "val 0-299 = mnist train 50,000-50,299 (lossy)"
    )
    assert "  1 labels disagree: train 8 says 7 (mnist train 8 is 1)" in lines
    assert "  re-ingest the originals with `mnist-catalog ingest mnist`" in lines
    # The hint is a command that works, even beside the old recipe's folder named mnist:
    # the name means the verified files (from a cache here, as after a first download).
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    for file in mnist_dir.glob("*.gz"):
        (cache / file.name).write_bytes(file.read_bytes())
    monkeypatch.chdir(old_recipe.parent)
    monkeypatch.setenv("MNIST_CATALOG_CACHE", str(tmp_path / "cache"))
    assert (old_recipe.parent / "mnist").is_dir()
    [hint] = [line.split("`")[1] for line in lines if "re-ingest the originals" in line]
    code, out, err = run(db_url, *hint.split()[1:])
    assert code == 0, err
    assert out.startswith("Ingested 70,000 images into mnist: test 10,000, train 60,000")
    # Stored per image: selectable by the two names the issue fixes.
    assert ids(db_url, "canonical_index=50123") == ["val:123"]
    test_ids = ids(db_url, "canonical_split=test")
    assert test_ids == [f"test:{i}" for i in range(298)]
    assert ids(db_url, "match=none") == ["test:298", "test:299"]
    assert len(ids(db_url, "canonical_split=train", "match=lossy")) == 1_700
    # Shown by query, written to export manifests.
    code, out, _ = run(db_url, "query", "-d", "old", "-s", "train", "--limit", "1", "-f", "json")
    [row] = json.loads(out)
    # No genuine pixels in this catalog: confirmed by signature, so no error measured.
    assert row["meta"] == {
        "match": "lossy", "canonical_dataset": "mnist", "canonical_split": "train",
        "canonical_index": "0",
    }  # fmt: skip
    code, out, err = run(db_url, "export", str(tmp_path / "out"), "-d", "old",
                         "--where", "canonical_index=50123", "--json")  # fmt: skip
    assert code == 0, err
    manifest = Path(json.loads(out)["manifest"]).read_text()
    assert "canonical_index=50123" in manifest
    assert "canonical_split=train" in manifest
    # Re-running replaces the previous answer instead of adding to it.
    code, out, err = run(db_url, "identify", "-d", "old", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == {"none": 2, "exact": 0, "lossy": 1998}
    [relabel] = data["label_disagreements"]
    assert (relabel["split"], relabel["index"], relabel["label"], relabel["canonical_label"]) == (
        "train", 8, 7, 1,
    )  # fmt: skip
    assert data["leakage"] == []
    assert ids(db_url, "canonical_index=50123") == ["val:123"]


@pytest.mark.mnist
def test_audit_lists_the_relabel_says_lossy_copy_and_finds_leakage(
    old_recipe: Path, mnist_arrays: Arrays, tmp_path: Path, catalog: Catalog
) -> None:
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    # A second dataset whose train holds three of MNIST's test digits.
    leaky = (np.concatenate([x[:20], xt[5:8]]), np.concatenate([y[:20], yt[5:8]]))
    write_image_folder(tmp_path / "leaky", {"train": leaky})
    catalog.ingest(old_recipe, dataset="old")
    catalog.ingest(tmp_path / "leaky", dataset="leaky")
    report = catalog.audit(checks=["identity"])
    [lossy] = [f for f in report.findings if f.code == "lossy-copies"]
    assert lossy.severity == "warning"
    # No genuine pixels in the catalog: matched by signature, so no stretch or error measured.
    assert lossy.message.startswith(
        "old: 1,998 of 2,000 images are lossy copies of mnist (JPEG-like re-encoding): "
        "test 0-297 = mnist test 0-297 (lossy); "
    )
    assert lossy.message.endswith("re-ingest the originals with `mnist-catalog ingest mnist`")
    [relabel] = [f for f in report.findings if f.code == "label-differs-from-canonical"]
    assert relabel.severity == "warning"
    assert [(r.dataset, r.split, r.index, r.label) for r in relabel.images] == [
        ("old", "train", 8, 7)
    ]
    assert relabel.message == "old train 8: labelled 7, but it is mnist train 8, labelled 1"
    # MNIST test 5-7 are in the reference's test split, and in old's test split too.
    leaks = [f for f in report.findings if f.code == "canonical-leak"]
    assert [f.message for f in leaks] == [
        f"leaky train: 3 images are copies of {name} test images "
        "(train 20 = test 5, train 21 = test 6, train 22 = test 7)"
        for name in ("mnist", "old")
    ]
    assert {f.severity for f in leaks} == {"error"}
    assert [(r.dataset, r.split, r.index) for r in leaks[0].images] == [
        ("leaky", "train", i) for i in (20, 21, 22)
    ]
    [genuine] = [f for f in report.findings if f.code == "genuine-images"]
    assert genuine.message.startswith("leaky: 23 of 23 images are genuine mnist images: ")
    # The folder is not called "not a known dataset" once identify has named its images.
    assert not [f for f in report.findings if f.code == "unknown-dataset"]


@pytest.mark.mnist
def test_a_genuine_subset_claiming_to_be_mnist_still_warns_about_its_size(
    mnist_arrays: Arrays, tmp_path: Path, catalog: Catalog
) -> None:
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    write_image_folder(tmp_path / "mnist", {"train": (x[:30], y[:30]), "test": (xt[:20], yt[:20])})
    catalog.ingest(tmp_path / "mnist", dataset="mnist")
    report = catalog.audit(checks=["identity"])
    [genuine] = [f for f in report.findings if f.code == "genuine-images"]
    assert genuine.message == (
        "mnist: 50 of 50 images are genuine mnist images: "
        "test 0-19 = mnist test 0-19 (exact); train 0-29 = mnist train 0-29 (exact)"
    )
    sizes = [f.message for f in report.findings if f.code == "differs-from-known"]
    assert [m.split(":")[0] for m in sizes] == ["mnist test", "mnist train"]
    assert all("images where" in m for m in sizes)


@pytest.mark.mnist
@pytest.mark.slow
def test_classic_pickle_resplit_is_info_not_a_size_warning(
    tmp_path: Path, mnist_arrays: Arrays, db_url: str
) -> None:
    (x, y), (xt, yt) = mnist_arrays["train"], mnist_arrays["test"]
    splits = [(x[:50_000], y[:50_000]), (x[50_000:], y[50_000:]), (xt, yt)]
    write_pickle_gz(tmp_path / "mnist.pkl.gz", splits)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "mnist.pkl.gz", dataset="mnist")  # claims to be MNIST
        report = catalog.audit(checks=["identity"])
    assert report.problems("warning") == []
    [resplit] = [f for f in report.findings if f.code == "known-resplit"]
    assert resplit.severity == "info"
    assert resplit.message == (
        "mnist: a re-split of mnist, every image genuine: test = mnist test (exact); "
        "train 0-49,999 = mnist train 0-49,999 (exact); "
        "val 0-9,999 = mnist train 50,000-59,999 (exact)"
    )


def test_foreign_digits_are_none_and_a_relabel_against_a_catalog_dataset(
    tmp_path: Path, db_url: str
) -> None:
    pixels, labels = random_digits(60, seed=21)
    write_image_folder(tmp_path / "ref", {"train": (pixels[:40], labels[:40]),
                                          "test": (pixels[40:], labels[40:])})  # fmt: skip
    copy_labels = labels[:10].copy()
    copy_labels[4] = (copy_labels[4] + 3) % 10  # a planted relabel
    write_old_recipe_folder(tmp_path / "copy", {"train": (pixels[:10], copy_labels)})
    drawn, _ = random_digits(1, seed=77)  # a digit drawn by the test, in no reference
    foreign = np.stack([letter("A"), letter("Q"), drawn[0]])
    write_image_folder(tmp_path / "copy", {"test": (foreign, np.array([1, 2, 3]))})
    for name in ("ref", "copy"):
        assert run(db_url, "ingest", str(tmp_path / name), "-d", name)[0] == 0
    code, out, err = run(db_url, "identify", "-d", "copy", "--against", "ref")
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "copy against ref: 13 images, 0 exact, 10 lossy, 3 none",
        "  test: 3 images not in ref (none); train 0-9 = ref train 0-9 (lossy)",
    ]
    assert out.splitlines()[2].startswith("  10 of 13 lossy copies of ref (JPEG-like re-encoding")
    assert f"  1 labels disagree: train 4 says {copy_labels[4]} (ref train 4 is {labels[4]})" in (
        out.splitlines()
    )
    # Against MNIST, letters and drawn strokes are nobody's digits.
    code, out, err = run(db_url, "identify", "-d", "copy", "--json", "--images")
    assert code == 0, err
    data = json.loads(out)
    assert data["counts"] == {"none": 13, "exact": 0, "lossy": 0}
    assert {image["kind"] for image in data["images"]} == {"none"}
    code, out, _ = run(db_url, "query", "-d", "copy", "--where", "match=none", "-f", "ids")
    assert len(out.split()) == 13  # the run against mnist replaced the one against ref
    code, out, _ = run(db_url, "query", "-d", "copy", "--where", "canonical_split=train")
    assert out.splitlines()[1:] == []


def test_identify_in_python_stores_unless_asked_not_to(tmp_path: Path, catalog: Catalog) -> None:
    pixels, labels = random_digits(12, seed=3)
    write_image_folder(tmp_path / "ref", {"train": (pixels, labels)})
    write_image_folder(tmp_path / "copy", {"test": (pixels[:4], labels[:4])})
    catalog.ingest(tmp_path / "ref", dataset="ref")
    catalog.ingest(tmp_path / "copy", dataset="copy")
    result = catalog.identify("copy", against="ref", store=False)
    assert result.counts() == {"none": 0, "exact": 4, "lossy": 0}
    assert catalog.select(dataset="copy", where={"match": "exact"}).count() == 0
    catalog.identify("copy", against="ref")
    selected = catalog.select(dataset="copy", where={"canonical_split": "train"})
    assert [(r.split, r.index, r.meta["canonical_index"]) for r in selected.rows()] == [
        ("test", i, str(i)) for i in range(4)
    ]


def test_identify_compares_the_current_label_after_relabel_decisions(
    tmp_path: Path, catalog: Catalog
) -> None:
    pixels, labels = random_digits(8, seed=4)
    copy_labels = labels.copy()
    copy_labels[2] = (labels[2] + 1) % 10  # wrong at the source
    write_image_folder(tmp_path / "ref", {"train": (pixels, labels)})
    write_image_folder(tmp_path / "copy", {"train": (pixels, copy_labels)})
    catalog.ingest(tmp_path / "ref", dataset="ref")
    catalog.ingest(tmp_path / "copy", dataset="copy")
    before = catalog.identify("copy", against="ref", store=False)
    assert [(d.index, d.label) for d in before.label_disagreements()] == [(2, copy_labels[2])]
    catalog.relabel("train:2", int(labels[2]), dataset="copy", note="fixed")  # fixed by a decision
    catalog.relabel("train:5", int((labels[5] + 3) % 10), dataset="copy")  # broken by one
    after = catalog.identify("copy", against="ref", store=False)
    assert [(d.index, d.label) for d in after.label_disagreements()] == [(5, (labels[5] + 3) % 10)]


def test_bad_reference_is_one_line_and_exit_1(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(3, seed=1)
    write_image_folder(tmp_path / "f", {"train": (pixels, labels)})
    assert run(db_url, "ingest", str(tmp_path / "f"), "-d", "f")[0] == 0
    code, out, err = run(db_url, "identify", "--against", "fashion")
    assert (code, out) == (1, "")
    assert err == (
        "Error: Cannot identify against 'fashion': expected mnist (shipped) "
        "or a dataset of the catalog (datasets: f)\n"
    )
    code, out, _ = run(db_url, "query", "--where", "match=none", "-f", "ids")
    assert out == ""  # nothing stored


def test_the_hint_for_a_copy_named_mnist_keeps_the_originals_beside_it() -> None:
    from catalog.identity.result import IdentityResult, reingest_command

    empty = np.zeros(0, np.int64)
    none = np.zeros(0, np.float32)
    result = IdentityResult(
        "mnist", "mnist", empty, np.zeros(0, np.str_), empty, empty, np.zeros(0, np.uint8),
        np.zeros(0, np.uint8), np.zeros(0, np.str_), empty, empty, none, none,
        np.zeros((0, 2), np.int8), none, np.zeros(0, bool),
    )  # fmt: skip
    assert reingest_command(result) == "mnist-catalog ingest mnist --dataset mnist-original"
    result.dataset = "old"
    assert reingest_command(result) == "mnist-catalog ingest mnist"
