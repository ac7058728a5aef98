"""The ``label_counts`` summary stays equal to a plain GROUP BY over ``images``, and counts
read from it equal counts over the images themselves, after every kind of change."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from builders import random_digits, write_idx_pair
from family_builders import write_csv
from sqlalchemy import delete, func, inspect, select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.images import Dataset, Image
from catalog.db.models.label_counts import LabelCount
from catalog.select.counts import count_images, reads_summary
from catalog.select.filters import label_column, selection_query
from catalog.selection import Selection

Rows = dict[tuple[Any, ...], int]


def summary_rows(catalog: Catalog) -> Rows:
    with session_scope(catalog.engine) as session:
        rows = session.execute(
            select(LabelCount.dataset_id, LabelCount.split, LabelCount.label, LabelCount.n)
        ).all()
    found: Counter[tuple[Any, ...]] = Counter()
    for dataset, split, label, n in rows:
        key = (dataset, split, label)
        assert key not in found, f"two summary rows for {key}"
        found[key] = n
    return dict(found)


def grouped_images(catalog: Catalog) -> Rows:
    columns = (Image.dataset_id, Image.split, Image.label)
    with session_scope(catalog.engine) as session:
        rows = session.execute(select(*columns, func.count()).group_by(*columns)).all()
    return {(d, s, label): n for d, s, label, n in rows}


def counted(catalog: Catalog, selection: Selection, by: tuple[str, ...]) -> Rows:
    with session_scope(catalog.engine) as session:
        return dict(count_images(session, selection, by))


def counted_over_images(catalog: Catalog, selection: Selection, by: tuple[str, ...]) -> Rows:
    """The same count taken from every selected image's row (current labels, curation)."""
    with session_scope(catalog.engine) as session:
        _, query = selection_query(session, selection)
        columns = [Image.split if key == "split" else label_column(selection) for key in by]
        rows = session.execute(query.with_only_columns(Image.id, *columns).order_by(None)).all()
    return dict(Counter(tuple(row[1:]) for row in rows))


def write_digits(root: Path, n: int, seed: int) -> Path:
    pixels, labels = random_digits(n, seed=seed)
    train = n * 3 // 4
    write_idx_pair(root, "train", pixels[:train], labels[:train])
    write_idx_pair(root, "t10k", pixels[train:], labels[train:])
    return root


SELECTIONS = [
    Selection(dataset="a"),
    Selection(dataset="a", splits=("train",)),
    Selection(dataset="a", labels=(1, 2, 7)),
    Selection(dataset="a", excluded="include"),
    Selection(dataset="a", excluded="only"),
    Selection(dataset="a", original_labels=True),
    Selection(dataset="a", labels=(3,), original_labels=True, excluded="include"),
]


def check_all(catalog: Catalog) -> None:
    assert summary_rows(catalog) == grouped_images(catalog)
    for selection in SELECTIONS:
        assert reads_summary(selection)
        for by in ((), ("split",), ("label",), ("split", "label")):
            assert counted(catalog, selection, by) == counted_over_images(catalog, selection, by)


def test_summary_follows_ingest_reingest_second_dataset_and_deletion(
    catalog: Catalog, tmp_path: Path
) -> None:
    catalog.ingest(write_digits(tmp_path / "a1", 400, seed=1), dataset="a")
    before = summary_rows(catalog)
    assert sum(before.values()) == 400
    check_all(catalog)

    # Re-ingest only the test split, with other content and another size.
    pixels, labels = random_digits(150, seed=2)
    write_idx_pair(tmp_path / "a2", "t10k", pixels, labels)
    result = catalog.ingest(tmp_path / "a2", dataset="a", replace=True)
    assert result.replaced == ["test"]
    after = summary_rows(catalog)
    assert after != before
    assert sum(n for (_, split, _), n in after.items() if split == "test") == 150
    assert {k: n for k, n in after.items() if k[1] == "train"} == {
        k: n for k, n in before.items() if k[1] == "train"
    }  # the untouched split keeps its rows
    check_all(catalog)

    catalog.ingest(write_digits(tmp_path / "b", 200, seed=3), dataset="b")
    assert len({d for d, _, _ in summary_rows(catalog)}) == 2
    check_all(catalog)
    assert sum(counted(catalog, Selection(dataset="b"), ()).values()) == 200

    with session_scope(catalog.engine) as session:  # FK cascade takes its counts along
        session.execute(delete(Dataset).where(Dataset.name == "b"))
    assert len({d for d, _, _ in summary_rows(catalog)}) == 1
    check_all(catalog)


def test_an_ingest_of_what_is_there_leaves_the_summary_as_it_was(
    catalog: Catalog, tmp_path: Path
) -> None:
    source = write_digits(tmp_path / "a", 120, seed=4)
    catalog.ingest(source, dataset="a")
    before = summary_rows(catalog)
    assert catalog.ingest(source, dataset="a").already_present
    assert summary_rows(catalog) == before == grouped_images(catalog)


def test_counts_follow_decisions(catalog: Catalog, tmp_path: Path) -> None:
    catalog.ingest(write_digits(tmp_path / "a", 300, seed=5), dataset="a")
    label = catalog.select(dataset="a", split="train").rows()[0].label
    assert label is not None
    catalog.relabel("train:0", (label + 1) % 10, dataset="a")
    catalog.relabel("test:3", 9, dataset="a")
    catalog.exclude(["train:1", "train:2", "test:0"], reason="not a digit", dataset="a")
    check_all(catalog)
    assert sum(counted(catalog, Selection(dataset="a", excluded="only"), ()).values()) == 3
    assert sum(counted(catalog, Selection(dataset="a"), ()).values()) == 297
    # The summary keeps the source's labels: decisions are corrections on top of it.
    assert summary_rows(catalog) == grouped_images(catalog)


@pytest.mark.parametrize(
    "selection",
    [
        Selection(dataset="k", unlabeled=True),
        Selection(dataset="k", where=(("writer", "7"),)),
        Selection(dataset="k", splits=("train",), where=(("writer", "9"),), labels=(1, 2, 3)),
        Selection(dataset="k", index_range=(1, 4)),
        Selection(dataset="k", splits=("train",), index_range=(0, 3), excluded="include"),
    ],
)
def test_selections_the_summary_cannot_answer_fall_back_to_the_images(
    catalog: Catalog, tmp_path: Path, selection: Selection
) -> None:
    pixels, labels = random_digits(5, seed=6)
    write_csv(tmp_path / "k" / "train.csv", pixels, labels, extra={"writer": [7, 7, 8, 9, 9]})
    write_csv(tmp_path / "k" / "test.csv", pixels[:3], None)
    catalog.ingest(tmp_path / "k", dataset="k")
    catalog.exclude("train:3", reason="smudged", dataset="k")
    assert summary_rows(catalog) == grouped_images(catalog)
    assert (None in {label for _, _, label in summary_rows(catalog)}) is True  # unlabeled kept
    assert not reads_summary(selection)
    for by in ((), ("split",), ("label",), ("split", "label")):
        assert counted(catalog, selection, by) == counted_over_images(catalog, selection, by)


def test_a_sampled_count_by_label_puts_unlabeled_images_last(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Samples are counted over their ids, not the summary; labels and None sort together."""
    pixels, labels = random_digits(5, seed=6)
    write_csv(tmp_path / "k" / "train.csv", pixels, labels)
    write_csv(tmp_path / "k" / "test.csv", pixels[:3], None)
    catalog.ingest(tmp_path / "k", dataset="k")
    counts = catalog.select(dataset="k", sample=8, seed=1).counts(by=("label",))
    assert list(counts)[-1] == (None,)
    assert counts[(None,)] == 3
    assert sum(counts.values()) == 8


def test_upgrade_to_0010_fills_the_summary_of_an_existing_catalog(
    db_url: str, tmp_path: Path
) -> None:
    from alembic import command

    from catalog.db.engine import make_engine
    from catalog.db.schema import alembic_config, upgrade

    with Catalog.open(db_url) as catalog:
        catalog.ingest(write_digits(tmp_path / "a", 240, seed=7), dataset="a")
        write_csv(tmp_path / "k" / "test.csv", random_digits(4, seed=8)[0], None)
        catalog.ingest(tmp_path / "k", dataset="k")
        expected = grouped_images(catalog)
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.connect() as connection:  # back to a catalog from before the summary
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0009")
        connection.commit()
    assert "label_counts" not in inspect(engine).get_table_names()
    upgrade(engine)
    engine.dispose()
    with Catalog.open(db_url) as catalog:
        assert summary_rows(catalog) == expected
        assert (None in {label for _, _, label in expected}) is True
        assert counted(catalog, Selection(dataset="a"), ("split",)) == {
            ("test",): 60,
            ("train",): 180,
        }
