"""An audit after an ingest reuses what an earlier audit measured per image: ink measures
(here) and identity matches (tests/test_identity_sampling.py); only new images are measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from builders import random_digits, write_image_folder
from sqlalchemy import delete

from catalog import Catalog
from catalog.audit.features import ink_measures
from catalog.audit.images import load_images
from catalog.audit.kept_ink import InkWork
from catalog.db.engine import session_scope
from catalog.db.models.measures import ImageMeasure


def test_ink_measures_are_kept_and_only_new_images_measured(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(40, seed=12)
    pixels[3] = 255 - pixels[3]  # one inverted image, whose flags must survive the round trip
    write_image_folder(tmp_path / "first", {"train": (pixels[:30], labels[:30])})
    write_image_folder(tmp_path / "more", {"extra": (pixels[30:], labels[30:])})
    works = []
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "first", dataset="drawn")
        for step in ("first", "again", "after ingest", "only extra"):
            if step == "after ingest":
                catalog.ingest(tmp_path / "more", dataset="drawn")
            with session_scope(catalog.engine) as session:
                data = load_images(session, "drawn", ("extra",) if step == "only extra" else ())
                ink = data.ink
                works.append(data.ink_work)
        # Stored measures are what the pixels give (current order: extra, then train).
        order = np.concatenate([np.arange(30, 40), np.arange(30)])
        with session_scope(catalog.engine) as session:
            data = load_images(session, "drawn", ())
            ink = data.ink
        fresh = ink_measures(pixels[order])
        for name in ("inked", "border_mean", "border_inked", "mass", "blank", "inverted"):
            np.testing.assert_array_equal(getattr(ink, name), getattr(fresh, name))
        np.testing.assert_allclose(ink.cy, fresh.cy)
        assert bool(ink.inverted[10 + 3])
        # Without kept rows (or with the table emptied) everything is measured again.
        with session_scope(catalog.engine, write=True) as session:
            session.execute(delete(ImageMeasure))
        with session_scope(catalog.engine) as session:
            data = load_images(session, "drawn", ())
            _ = data.ink
            works.append(data.ink_work)
    assert works == [
        InkWork(measured=30, reused=0, kept=True),
        InkWork(measured=0, reused=30, kept=True),
        InkWork(measured=10, reused=30, kept=True),
        InkWork(measured=0, reused=10, kept=True),
        InkWork(measured=40, reused=0, kept=True),
    ]


def test_measuring_no_images_gives_empty_measures() -> None:
    """A block of zero images (an audit with nothing new) measures to empty arrays."""
    from catalog.audit.features import InkMeasures, ink_measures

    empty = ink_measures(np.zeros((0, 28, 28), np.uint8))
    assert [len(getattr(empty, name)) for name in InkMeasures.__dataclass_fields__] == [0] * 8
    assert len(InkMeasures.concatenate([], (28, 28)).inked) == 0


def test_identity_takes_the_audits_images_as_it_would_read_them(
    tmp_path: Path, db_url: str
) -> None:
    """The identity check hands identify the images the audit read already; they are
    the columns identify reads itself, in its order."""
    from catalog.audit.identified import image_columns
    from catalog.identity.columns import image_columns as _image_columns

    pixels, labels = random_digits(30, seed=3)
    write_image_folder(tmp_path / "src", {"train": (pixels[:20], labels[:20]),
                                          "test": (pixels[20:], labels[20:])})  # fmt: skip
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "src", dataset="drawn")
        catalog.relabel("train:4", (int(labels[4]) + 1) % 10, dataset="drawn")
        with session_scope(catalog.engine) as session:
            ours = image_columns(load_images(session, "drawn", ()))
            theirs = _image_columns(session, 1)
    for name in ("ids", "splits", "indices", "labels", "digests", "heights", "widths"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
