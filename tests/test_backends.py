"""The same catalog answers the same on SQLite, PostgreSQL, and PostgreSQL with a
collation that orders text differently (an ICU ``en-US`` database, where ``_``
sorts before ``-`` and before digits).

Seeded samples, split and dataset order, and timestamps are compared across the
three.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from builders import random_digits, write_image_folder
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import Export, ExportedFile
from catalog.db.models.images import Dataset, Source

#: Ordered differently by code point ("-" < "0" < "_") and by ICU en-US ("_" < "-" < "0").
SPLITS = ("train-a", "train0", "train_b")
NAMES = ("digits-x", "digits0", "digits_y")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    pixels, labels = random_digits(60, seed=11)
    parts = {split: (pixels[i::3], labels[i::3]) for i, split in enumerate(SPLITS)}
    return write_image_folder(root / "digits", parts)


@pytest.fixture
def icu_url(pg_admin: Engine) -> Iterator[str]:
    """An empty PostgreSQL database whose collation is ICU en-US."""
    name = f"t_icu_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:
        conn.execute(
            text(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        )
    try:
        yield make_url(str(pg_admin.url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def answers(url: str, source: Path, out: Path) -> dict[str, object]:
    """Ingest ``source`` under three names, export a sample; return what the catalog says."""
    with Catalog.open(url) as catalog:
        for name in NAMES:
            catalog.ingest(source, dataset=name)
        seeded = catalog.select(dataset="digits0", sample=9, seed=5)
        catalog.select(dataset="digits0", per_label=1, seed=2).export(out, jobs=1)
        summaries = catalog.datasets()
        with session_scope(catalog.engine) as session:
            stamps = [
                *session.scalars(select(Dataset.created_at)),
                *session.scalars(select(Source.ingested_at)),
                *session.scalars(select(Export.created_at)),
                *session.scalars(select(ExportedFile.written_at)),
            ]
        return {
            "names": [s.name for s in summaries],
            "splits": [list(s.splits) for s in summaries],
            "sample": [(r.split, r.index) for r in seeded.rows()],
            "sample_pixels": seeded.arrays()[0].tobytes(),
            "per_label_random": [
                (r.split, r.index)
                for r in catalog.select(
                    per_label=2, seed=9, order="random", dataset="digits_y"
                ).rows()
            ],
            "all": [(r.split, r.index) for r in catalog.select(dataset="digits-x").rows()],
            "exported": sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")),
            "created": [s.created_at[-6:] for s in summaries],
            "stamps_aware": all(
                s.tzinfo is not None and s.utcoffset() == timedelta(0) for s in stamps
            ),
            "stamps_recent": all(
                abs((datetime.now(UTC) - s).total_seconds()) < 600 for s in stamps
            ),
        }


def test_answers_are_the_same_on_every_backend_and_collation(
    source: Path, tmp_path: Path, db_url: str, backend: str, icu_url: str
) -> None:
    if backend != "postgresql":
        pytest.skip("compares SQLite with two PostgreSQL databases in one run")
    lite = answers(str(tmp_path / "c.db"), source, tmp_path / "lite")
    pg = answers(db_url, source, tmp_path / "pg")
    icu = answers(icu_url, source, tmp_path / "icu")
    assert lite["names"] == sorted(NAMES)  # code point order
    assert lite["splits"] == [sorted(SPLITS)] * 3
    assert lite["created"] == ["+00:00"] * 3
    assert lite["stamps_aware"] is True
    assert lite["stamps_recent"] is True
    assert len(lite["sample"]) == 9  # type: ignore[arg-type]
    assert len(lite["exported"]) > 0  # type: ignore[arg-type]
    for other in (pg, icu):
        assert other == lite
    sample_splits = {split for split, _ in lite["sample"]}  # type: ignore[attr-defined]
    assert len(sample_splits) > 1  # the sample crosses splits, so their order matters


def test_icu_collation_really_orders_differently(icu_url: str) -> None:
    """The premise of the test above: this database orders the names otherwise."""
    from sqlalchemy import create_engine

    engine = create_engine(icu_url)
    with engine.connect() as conn:
        values = ", ".join(f"('{n}')" for n in NAMES)
        ordered = conn.execute(text(f"SELECT v FROM (VALUES {values}) AS t(v) ORDER BY v"))
        assert [row[0] for row in ordered] != sorted(NAMES)
    engine.dispose()
    assert np.array_equal(np.sort(np.array(NAMES)), np.array(sorted(NAMES)))
