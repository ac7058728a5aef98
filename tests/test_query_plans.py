"""Counts read an index of the images, not the table: checked with EXPLAIN on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import random_digits, write_idx_pair
from sqlalchemy import text

from catalog import Catalog
from catalog.counting import count_statement
from catalog.db import session_scope
from catalog.query import Selection, count_images, select_ids

INDEX = "ix_images_dataset_split_label_idx"


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


@pytest.mark.parametrize(
    ("selection", "by"),
    [
        (Selection(dataset="small"), ()),
        (Selection(dataset="small"), ("split", "label")),
        (Selection(dataset="small"), ("label",)),
        (Selection(dataset="small", splits=("train",), labels=(3, 5)), ("label",)),
    ],
)
def test_counts_use_the_label_index_and_not_the_table(
    two_datasets: Catalog, selection: Selection, by: tuple[str, ...]
) -> None:
    found = plan(two_datasets, selection, by)
    if two_datasets.engine.dialect.name == "sqlite":
        assert f"USING COVERING INDEX {INDEX}" in found  # the table itself is never read
    else:  # the planner may prefer the unique (dataset, split, idx) index on small tables
        assert "Index Only Scan using " in found or "Index Scan using " in found
        assert "Seq Scan" not in found
    with session_scope(two_datasets.engine) as session:
        counted = sum(n for _, n in count_images(session, selection, by))
        expected = len(select_ids(session, selection))
    assert counted == expected > 0
