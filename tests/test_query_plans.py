"""Counts read the ``label_counts`` summary when a selection filters by dataset, split and
label alone, and otherwise an index of the images, never the table: checked with EXPLAIN on
both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import random_digits, write_idx_pair
from sqlalchemy import text

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.select.counts import count_images, count_statement
from catalog.select.ids import select_ids
from catalog.selection import Selection


def plan(catalog: Catalog, selection: Selection, by: tuple[str, ...]) -> str:
    with session_scope(catalog.engine) as session:
        _, statement = count_statement(session, selection, by)
        sql = str(statement.compile(catalog.engine, compile_kwargs={"literal_binds": True}))
        if catalog.engine.dialect.name == "sqlite":
            rows = session.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all()
            return "\n".join(str(row[-1]) for row in rows)
        return "\n".join(str(row[0]) for row in session.execute(text(f"EXPLAIN {sql}")))


@pytest.fixture
def two_datasets(catalog: Catalog, tmp_path: Path) -> Catalog:
    """A small dataset beside a larger one, statistics gathered (as after an ingest)."""
    for name, n in (("big", 4000), ("small", 200)):
        pixels, labels = random_digits(n, seed=len(name))
        train = n * 4 // 5
        write_idx_pair(tmp_path / name, "train", pixels[:train], labels[:train])
        write_idx_pair(tmp_path / name, "t10k", pixels[train:], labels[train:])
        catalog.ingest(tmp_path / name, dataset=name)
    with catalog.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return catalog


SUMMARY_SELECTIONS = [
    (Selection(dataset="small"), ()),
    (Selection(dataset="small"), ("split", "label")),
    (Selection(dataset="small"), ("label",)),
    (Selection(dataset="small", splits=("train",), labels=(3, 5)), ("label",)),
    (Selection(dataset="small", excluded="include", original_labels=True), ("split",)),
]


@pytest.mark.parametrize(("selection", "by"), SUMMARY_SELECTIONS)
def test_plain_counts_read_the_summary_and_not_the_images(
    two_datasets: Catalog, selection: Selection, by: tuple[str, ...]
) -> None:
    found = plan(two_datasets, selection, by)
    assert "label_counts" in found
    assert "images" not in found  # neither the table nor its indexes
    with session_scope(two_datasets.engine) as session:
        counted = sum(n for _, n in count_images(session, selection, by))
        expected = len(select_ids(session, selection))
    assert counted == expected > 0


@pytest.mark.parametrize(
    ("selection", "by"),
    [
        (Selection(dataset="small", index_range=(10, 90)), ()),
        (Selection(dataset="small", splits=("train",), index_range=(0, 50)), ("label",)),
        (Selection(dataset="small", labels=(3,), index_range=(5, 500)), ("split", "label")),
    ],
)
def test_counts_the_summary_cannot_answer_use_an_index_and_not_the_table(
    two_datasets: Catalog, selection: Selection, by: tuple[str, ...]
) -> None:
    found = plan(two_datasets, selection, by)
    assert "label_counts" not in found
    if two_datasets.engine.dialect.name == "sqlite":
        # An index search, never a scan of the table (with a split and a range SQLite
        # may take the unique (dataset_id, split, idx) index and read labels from rows).
        assert "SEARCH images USING " in found
        assert "SCAN images" not in found
    else:  # the planner may prefer the unique (dataset, split, idx) index on small tables
        assert "Index Only Scan using " in found or "Index Scan using " in found
        assert "Seq Scan" not in found
    with session_scope(two_datasets.engine) as session:
        counted = sum(n for _, n in count_images(session, selection, by))
        expected = len(select_ids(session, selection))
    assert counted == expected > 0
