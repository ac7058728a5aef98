"""An audit after an ingest reuses the label model's kept fit and scores only the new
images, with the findings of a full audit (catalog/audit/kept_labels.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from builders import write_image_folder
from test_label_errors import flipped
from test_near_duplicates import synthetic_digits

from catalog import Catalog


def label_report(catalog: Catalog, *, full: bool = False) -> tuple[list[Any], dict[str, Any]]:
    report = catalog.audit(dataset="drawn", checks=["label-errors"], full=full)
    found = [(f.message, f.details) for f in report.findings]
    return found, report.summary["label-errors"]["drawn"]


def test_kept_fit_scores_new_images_as_a_full_audit(tmp_path: Path, db_url: str) -> None:
    pixels, labels = synthetic_digits(460, seed=5)
    noisy, _ = flipped(labels, 12, seed=6)
    first = write_image_folder(tmp_path / "first", {"train": (pixels[:300], noisy[:300]),
                                                    "test": (pixels[300:400], noisy[300:400])})  # fmt: skip
    more = write_image_folder(tmp_path / "more", {"extra": (pixels[400:], noisy[400:])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(first, dataset="drawn")
        _, summary = label_report(catalog)
        assert summary["reuse"] == "fitted (nothing kept under these settings)"
        catalog.ingest(more, dataset="drawn")
        again, summary = label_report(catalog)
        assert summary["reuse"].startswith("fit of ")
        assert summary["reuse"].endswith("; 60 new images scored, 400 reused")
        full, full_summary = label_report(catalog, full=True)
        assert full_summary["reuse"] == "fitted (--full)"
        assert again == full
        assert summary["ranking"] == full_summary["ranking"]
        assert summary["fitted_on"] == full_summary["fitted_on"] == 300
        assert any("extra:" in message for message, _ in full)  # a new image is a suspect
        # A relabelled test image is scored again under its new label, as a full audit does.
        catalog.relabel("test:0", (int(noisy[300]) + 1) % 10, dataset="drawn")
        again, summary = label_report(catalog)
        assert summary["reuse"].endswith("; 1 new images scored, 459 reused")
        assert again == label_report(catalog, full=True)[0]


def test_a_changed_train_split_is_fitted_again(tmp_path: Path, db_url: str) -> None:
    pixels, labels = synthetic_digits(300, seed=7)
    first = write_image_folder(tmp_path / "first", {"train": (pixels[:200], labels[:200]),
                                                    "test": (pixels[200:250], labels[200:250])})  # fmt: skip
    other = write_image_folder(tmp_path / "other", {"train": (pixels[50:], labels[50:])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(first, dataset="drawn")
        label_report(catalog)
        _, summary = label_report(catalog)
        assert summary["reuse"].endswith("; 0 new images scored, 250 reused")
        catalog.relabel("train:3", (int(labels[3]) + 1) % 10, dataset="drawn")
        _, summary = label_report(catalog)
        assert summary["reuse"] == (
            "fitted (train images were removed, replaced or relabelled since the fit)"
        )
        catalog.ingest(other, dataset="drawn", replace=True)
        _, summary = label_report(catalog)
        assert summary["reuse"] == (
            "fitted (train images were removed, replaced or relabelled since the fit)"
        )
        assert np.isfinite(summary["fitted_on"])


def test_a_reingested_train_split_with_the_same_ids_is_fitted_again(
    tmp_path: Path, db_url: str
) -> None:
    """The train split replaced by other images with the same labels (and, on SQLite,
    maybe the same ids): the pixels differ, so the kept fit is not used."""
    pixels, labels = synthetic_digits(300, seed=9)
    first = write_image_folder(tmp_path / "first", {"train": (pixels[:200], labels[:200])})
    other = write_image_folder(tmp_path / "other", {"train": (pixels[100:300], labels[:200])})
    test = write_image_folder(tmp_path / "test", {"test": (pixels[:50], labels[:50])})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(test, dataset="drawn")
        catalog.ingest(first, dataset="drawn")  # train last: its ids are the highest
        label_report(catalog)
        catalog.ingest(other, dataset="drawn", replace=True)
        again, summary = label_report(catalog)
        full, _ = label_report(catalog, full=True)
    assert summary["reuse"] == (
        "fitted (train images were removed, replaced or relabelled since the fit)"
    )
    assert again == full
