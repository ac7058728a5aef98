"""Identify, bounded: a sample decides whether a dataset is derived from MNIST at all, and
an audit reads back the matches an earlier audit kept instead of searching again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_image_folder
from old_recipe import Arrays, write_old_recipe_folder
from sqlalchemy import func, select

from catalog import Catalog
from catalog.audit import identified
from catalog.db.engine import session_scope
from catalog.db.models.measures import ImageMeasure
from catalog.identity.match import identify_session
from catalog.identity.result import Sampled
from catalog.identity.sampling import derived, sample_of


def test_sample_is_fixed_and_in_order() -> None:
    pending = np.arange(100, 200)
    chosen = sample_of(pending, 10)
    assert len(chosen) == 10
    assert (np.diff(chosen) > 0).all()
    np.testing.assert_array_equal(chosen, sample_of(pending, 10))
    assert sample_of(pending[:5], 10).tolist() == pending[:5].tolist()


def test_foreign_digits_are_sampled_and_the_rest_not_searched(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(60, seed=5)
    write_image_folder(tmp_path / "drawn", {"train": (pixels, labels)})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "drawn", dataset="drawn")
        with session_scope(catalog.engine) as session:
            result = identify_session(session, "drawn", sample=20)
            full = identify_session(session, "drawn")
    assert result.sampled == Sampled(searched=20, pending=60, matched=0)
    assert result.searched is not None
    assert int(result.searched.sum()) == 20
    assert result.searched_now == 20
    assert result.counts() == {"none": 60, "exact": 0, "lossy": 0}
    [note] = result.notes
    assert note == (
        "not derived from mnist: of the 60 images no digest matched, a random sample of 20 "
        "was searched, none of them a lossy copy; the other 40 were not searched "
        "(`mnist-catalog identify` searches every image)"
    )
    # Without a sample every image is searched, and nothing is said about sampling.
    assert (full.sampled, full.searched, full.searched_now) == (None, None, 60)
    assert full.counts() == result.counts()


@pytest.mark.mnist
def test_a_partly_derived_dataset_is_searched_in_full(
    tmp_path: Path, mnist_arrays: Arrays, db_url: str
) -> None:
    """Lossy copies a quarter of the images: the sample finds some, so every image is
    searched, and every copy is found (with its changed label) however small the sample."""
    (x, y), _ = mnist_arrays["train"], mnist_arrays["test"]
    drawn, drawn_labels = random_digits(60, seed=8)
    copies, copy_labels = x[:20], y[:20].astype(np.int64)
    copy_labels[7] = (copy_labels[7] + 1) % 10
    pixels = np.concatenate([drawn[:30], copies, drawn[30:]])
    labels = np.concatenate([drawn_labels[:30], copy_labels, drawn_labels[30:]])
    write_old_recipe_folder(tmp_path / "mixed", {"train": (pixels, labels)})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "mixed", dataset="mixed")
        with session_scope(catalog.engine) as session:
            result = identify_session(session, "mixed", sample=16)
    assert derived(1, 16)  # one copy in a sample of 16 is enough
    assert result.sampled is None
    assert result.searched_now == 80
    assert result.counts() == {"none": 60, "exact": 0, "lossy": 20}
    lossy = np.flatnonzero(result.kinds == 2)
    assert lossy.tolist() == list(range(30, 50))
    np.testing.assert_array_equal(result.canonical_indices[lossy], np.arange(20))
    assert [(d.split, d.index) for d in result.label_disagreements()] == [("train", 37)]


def kept_rows(catalog: Catalog) -> int:
    with session_scope(catalog.engine) as session:
        return int(session.scalar(select(func.count()).select_from(ImageMeasure)) or 0)


def test_audit_says_not_derived_and_searches_only_new_images_next_time(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identified, "SAMPLE", 25)
    pixels, labels = random_digits(130, seed=9)
    write_image_folder(tmp_path / "first", {"train": (pixels[:100], labels[:100])})
    write_image_folder(tmp_path / "more", {"extra": (pixels[100:], labels[100:])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "first", dataset="drawn")
        report = catalog.audit(checks=["identity"])
        [note] = [f for f in report.findings if f.code == "not-derived"]
        assert note.severity == "info"
        assert note.message.startswith(
            "drawn: not derived from mnist: of the 100 images no digest matched, a random "
            "sample of 25 was searched, none of them a lossy copy; the other 75 were not searched"
        )
        assert note.details["unsearched"] == 75
        # A sample that names no image leaves "not a known dataset" standing.
        assert [f.code for f in report.findings if f.code == "unknown-dataset"]
        assert report.summary["identity"]["drawn"] == {
            "none": 100, "exact": 0, "lossy": 0, "searched": 25, "reused": 0, "unsearched": 75,
        }  # fmt: skip
        assert kept_rows(catalog) == 25  # only what was searched is kept
        # Ingest 30 more: the 25 kept are read back; the sample is drawn from the 105 others.
        catalog.ingest(tmp_path / "more", dataset="drawn")
        again = catalog.audit(checks=["identity"])
        assert again.summary["identity"]["drawn"] == {
            "none": 130, "exact": 0, "lossy": 0, "searched": 25, "reused": 25, "unsearched": 80,
        }  # fmt: skip
        assert kept_rows(catalog) == 50


def test_audit_of_a_small_dataset_searches_all_then_nothing(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(40, seed=4)
    write_image_folder(tmp_path / "first", {"train": (pixels[:30], labels[:30])})
    write_image_folder(tmp_path / "more", {"extra": (pixels[30:], labels[30:])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "first", dataset="drawn")
        first = catalog.audit(checks=["identity"])
        catalog.ingest(tmp_path / "more", dataset="drawn")
        second = catalog.audit(checks=["identity"])
        third = catalog.audit(checks=["identity"])
    counts = [r.summary["identity"]["drawn"] for r in (first, second, third)]
    assert [(c["searched"], c["reused"], c["unsearched"]) for c in counts] == [
        (30, 0, 0), (10, 30, 0), (0, 40, 0),
    ]  # fmt: skip
    assert not [f for r in (first, second, third) for f in r.findings if f.code == "not-derived"]
