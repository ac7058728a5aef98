"""Curation decisions through the library: the log, the state derived from it,
and every selection honouring them. Tiny is train [1, 7, 4] and test [7, 1]."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from sqlalchemy import select

from catalog import Catalog
from catalog.curation.log import rebuild_state, replay, stored_state
from catalog.db.engine import session_scope
from catalog.db.models.decisions import Decision
from catalog.db.models.images import Image
from catalog.errors import CatalogError, DecisionError, ImageNotFoundError, UnknownTagError


def state_of(catalog: Catalog) -> tuple[dict[int, tuple[Any, ...]], int]:
    with session_scope(catalog.engine) as session:
        stored = {i: (s.label, s.excluded, sorted(s.tags), s.decision_id)
                  for i, s in stored_state(session).items()}  # fmt: skip
        count = len(session.scalars(select(Decision.id)).all())
    return stored, count


def test_relabel_changes_the_current_label_and_keeps_the_source_label(
    tiny_catalog: Catalog,
) -> None:
    summary = tiny_catalog.relabel("test:0", 2, note="looks like a 2", by="ana")
    assert (summary.recorded, summary.relabelled, summary.first_id) == (1, 1, 1)
    [row, other] = tiny_catalog.select(split="test").rows()
    assert (row.label, row.original_label, row.decision) == (2, 7, 1)
    assert (other.label, other.original_label, other.decision) == (1, 1, None)
    with session_scope(tiny_catalog.engine) as session:  # the source's label stays
        assert session.scalar(select(Image.label).where(Image.id == row.id)) == 7
    assert tiny_catalog.select(split="test", labels=2).count() == 1
    assert tiny_catalog.select(split="test", labels=7).count() == 0
    assert tiny_catalog.select(split="test", labels=7, original_labels=True).count() == 1
    assert tiny_catalog.select(relabelled=True).count() == 1
    assert tiny_catalog.select(split="test").counts(("label",)) == {(1,): 1, (2,): 1}
    _, labels = tiny_catalog.select(split="test").arrays()
    assert labels.tolist() == [2, 1]
    [record] = tiny_catalog.history("test:0")
    assert (record.action, record.label, record.note, record.by, record.original_label) == (
        "relabel", 2, "looks like a 2", "ana", 7,
    )  # fmt: skip
    # relabelling to the current label changes nothing and is not recorded
    assert tiny_catalog.relabel("test:0", "2").unchanged == 1
    # relabelling back to the source's label: no longer "relabelled"
    tiny_catalog.relabel("test:0", 7)
    assert tiny_catalog.select(relabelled=True).count() == 0
    assert [r.label for r in tiny_catalog.history("test:0")] == [2, 7]


def test_excluded_images_are_left_out_everywhere_and_counted(tiny_catalog: Catalog) -> None:
    tiny_catalog.exclude(["train:1", "test:1"], reason="not a digit")
    train = tiny_catalog.select(split="train")
    assert train.count() == 2
    assert train.left_out() == 1
    assert [r.index for r in train.rows()] == [0, 2]
    x, y = train.arrays()
    assert (x.shape[0], y.tolist()) == (2, [1, 4])
    assert tiny_catalog.select().counts(("split",)) == {("test",): 1, ("train",): 2}
    assert tiny_catalog.select(excluded="include").count() == 5
    assert [r.index for r in tiny_catalog.select(excluded="only", split="train").rows()] == [1]
    assert tiny_catalog.select(excluded="only").rows()[0].excluded
    tiny_catalog.include("train:1")
    assert train.count() == 3
    assert train.left_out() == 0


def test_tags_select_and_untag(tiny_catalog: Catalog) -> None:
    summary = tiny_catalog.select(split="train").tag("suspect", note="from audit")
    assert summary.tagged == 3
    assert tiny_catalog.select(split="train").tag("suspect").unchanged == 3
    tiny_catalog.tag("reviewed", ["train:0", "test:1"])
    assert tiny_catalog.select(tag="suspect").count() == 3
    assert tiny_catalog.select(tag=["suspect", "reviewed"]).count() == 1
    assert tiny_catalog.select(without_tag="suspect").count() == 2
    assert tiny_catalog.select(tag="suspect", without_tag="reviewed").count() == 2
    assert tiny_catalog.select(split="train").rows()[0].tags == ("reviewed", "suspect")
    assert tiny_catalog.untag("suspect", ["train:0", "test:0"]).untagged == 1
    assert tiny_catalog.select(tag="suspect").count() == 2
    with pytest.raises(UnknownTagError, match=re.escape("Unknown tag 'nope': no image carries")):
        tiny_catalog.untag("nope", "train:0")
    with pytest.raises(UnknownTagError, match="not on any of the 1 images named"):
        tiny_catalog.untag("suspect", "test:0")


def test_undo_is_a_new_decision(tiny_catalog: Catalog) -> None:
    tiny_catalog.relabel("train:1", 1)
    tiny_catalog.relabel("train:1", 9)
    tiny_catalog.exclude("train:2", reason="blurry")
    tiny_catalog.tag("odd", "train:2")
    assert tiny_catalog.undo(2).relabelled == 1  # back to 1, the label before #2
    assert tiny_catalog.select(split="train", index=(1, 2)).rows()[0].label == 1
    tiny_catalog.undo(1)  # back to the source's 7
    assert tiny_catalog.select(relabelled=True).count() == 0
    tiny_catalog.undo(3)
    tiny_catalog.undo(4)
    assert tiny_catalog.select(split="train").count() == 3
    assert tiny_catalog.select(tag="odd").count() == 0
    history = tiny_catalog.history("train:2")
    assert [(r.action, r.undoes) for r in history] == [
        ("exclude", None), ("tag", None), ("include", 3), ("untag", 4),
    ]  # fmt: skip
    assert history[2].note == "undo #3"
    with pytest.raises(DecisionError, match=re.escape("No decision #99 in the catalog")):
        tiny_catalog.undo(99)


def test_bad_decisions_are_one_line_errors_and_apply_nothing(tiny_catalog: Catalog) -> None:
    tiny_catalog.tag("keep", "train:0")
    before = state_of(tiny_catalog)
    cases: list[tuple[type[CatalogError], str, object]] = [
        (ImageNotFoundError, "No image test:9 in dataset tiny",
         lambda: tiny_catalog.exclude(["test:0", "test:9"], reason="x")),
        (CatalogError, "Label 10 is not in the label set: expected one of 0, 1",
         lambda: tiny_catalog.relabel("test:0", 10)),
        (CatalogError, "Label 'seven' is not in the label set",
         lambda: tiny_catalog.relabel("test:0", "seven")),
        (DecisionError, "Image 'test-0' is not SPLIT:INDEX",
         lambda: tiny_catalog.relabel("test-0", 1)),
        (DecisionError, "Invalid tag name 'two words'",
         lambda: tiny_catalog.tag("two words", "test:0")),
        (UnknownTagError, "Unknown tag 'ghost'", lambda: tiny_catalog.untag("ghost", "train:0")),
    ]  # fmt: skip
    for kind, message, call in cases:
        with pytest.raises(kind, match=re.escape(message)):
            call()  # type: ignore[operator]
    assert state_of(tiny_catalog) == before


def test_state_tables_are_derived_from_the_log(tiny_catalog: Catalog) -> None:
    tiny_catalog.relabel("test:0", 3)
    tiny_catalog.exclude(["train:0", "train:2"], reason="dup")
    tiny_catalog.select(split="train").tag("seen")
    tiny_catalog.untag("seen", "train:1")
    tiny_catalog.undo(2)
    tiny_catalog.relabel("test:0", 7)
    before = state_of(tiny_catalog)
    with session_scope(tiny_catalog.engine, write=True) as session:
        assert {i: s.decision_id for i, s in replay(session).items()} == {
            i: s[3] for i, s in before[0].items()
        }
        assert rebuild_state(session) == 4
    assert state_of(tiny_catalog) == before


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_csv_all_or_nothing_with_dry_run(tiny_catalog: Catalog, tmp_path: Path) -> None:
    good = write_csv(
        tmp_path / "d.csv",
        "split,index,action,label,tag,note\n"
        "test,0,,2,,was a 7\n"
        "test,1,relabel,3,,\n"
        "train,0,exclude,,,smudge\n"
        "train,1,tag,,ambiguous,\n"
        "train,1,untag,,ambiguous,changed my mind\n",
    )
    dry = tiny_catalog.apply(good, dry_run=True)
    assert (dry.recorded, dry.relabelled, dry.excluded, dry.tagged, dry.untagged) == (5, 2, 1, 1, 1)
    assert dry.describe().startswith("Would record 5 decisions: 2 relabelled, 1 excluded")
    assert state_of(tiny_catalog) == ({}, 0)
    done = tiny_catalog.apply(good, by="bob")
    assert done.describe() == (
        "Recorded 5 decisions (#1-#5): 2 relabelled, 1 excluded, 1 tagged, 1 untagged"
    )
    assert [r.label for r in tiny_catalog.select(split="test").rows()] == [2, 3]
    assert {r.by for r in tiny_catalog.decisions()} == {"bob"}
    assert tiny_catalog.decisions(by="nobody") == []
    assert len(tiny_catalog.decisions(since="2000-01-01")) == 5
    before = state_of(tiny_catalog)
    bad_rows = {
        "test,0,relabel,12,,\n": "line 3: Label '12' is not in the label set",
        "test,7,relabel,1,,\n": "line 3: No image test:7 in dataset tiny",
        "test,0,erase,,,\n": "line 3: unknown action 'erase'",
        "test,0,untag,,never-used,\n": "line 3: unknown tag 'never-used'",
        "test,x,relabel,1,,\n": "line 3: expected a split and a whole-number index",
        "test,0,tag,,,\n": "line 3: a tag row needs a tag",
    }
    for row, message in bad_rows.items():
        bad = write_csv(tmp_path / "bad.csv", "split,index,action,label,tag,note\n"
                        "test,1,relabel,5,,\n" + row)  # fmt: skip
        with pytest.raises(DecisionError, match=re.escape(f"{bad} {message}")):
            tiny_catalog.apply(bad)
        assert state_of(tiny_catalog) == before
    with pytest.raises(DecisionError, match=re.escape("line 1: unknown column 'colour'")):
        tiny_catalog.apply(write_csv(tmp_path / "c.csv", "split,index,colour\ntest,0,red\n"))


def test_decisions_move_between_catalogs_as_csv(
    tiny_catalog: Catalog, tmp_path: Path, db_url: str
) -> None:
    from catalog.curation.log import decisions_csv

    tiny_catalog.relabel("test:0", 2, note='a "2", surely')
    tiny_catalog.exclude("train:0", reason="smudge, dark")
    tiny_catalog.tag("reviewed", ["train:1", "train:2"])
    tiny_catalog.undo(1)
    exported = write_csv(tmp_path / "log.csv", decisions_csv(tiny_catalog.decisions()))
    with Catalog.open(tmp_path / "other.db") as other:
        other.ingest(Path(__file__).parent / "data" / "tiny", dataset="tiny")
        assert other.apply(exported).recorded == 5
        theirs = [(r.split, r.index, r.action, r.label, r.tag, r.note, r.by)
                  for r in other.decisions()]  # fmt: skip
        assert (
            other.select(excluded="include").rows()
            == tiny_catalog.select(excluded="include").rows()
        )
    ours = [(r.split, r.index, r.action, r.label, r.tag, r.note, r.by)
            for r in tiny_catalog.decisions()]  # fmt: skip
    assert theirs == ours


def test_two_writers_deciding_at_once_both_land_in_order(db_url: str, tmp_path: Path) -> None:
    pixels, labels = random_digits(200, seed=4)
    write_idx_pair(tmp_path / "src", "train", pixels, labels)
    write_idx_pair(tmp_path / "src", "t10k", pixels[:10], labels[:10])
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "src", dataset="digits")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(who: str, indices: range) -> None:
        try:
            with Catalog.open(db_url) as mine:
                start.wait()
                for i in indices:
                    mine.tag(who, f"train:{i}", by=who)
                    mine.relabel(f"train:{i}", (int(labels[i]) + 1) % 10, by=who)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=("a", range(30))),
               threading.Thread(target=work, args=("b", range(100, 130)))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Catalog.open(db_url) as catalog:
        log = catalog.decisions()
        assert [r.id for r in log] == list(range(1, 121))
        for who, first in (("a", 0), ("b", 100)):
            mine = [r for r in log if r.by == who]
            assert [r.index for r in mine] == [i for i in range(first, first + 30) for _ in "tr"]
        rows = catalog.select(split="train").rows()
        changed = [*range(30), *range(100, 130)]
        assert [r.index for r in rows if r.label != r.original_label] == changed
        assert np.array_equal([rows[i].label for i in changed], (labels[changed] + 1) % 10)
        assert catalog.select(tag="a").count() == catalog.select(tag="b").count() == 30
        with session_scope(catalog.engine) as session:
            assert {i: s.label for i, s in replay(session).items()} == {
                i: s.label for i, s in stored_state(session).items()
            }


def test_images_published_without_a_label_can_be_labelled_and_tagged(
    db_url: str, tmp_path: Path
) -> None:
    from family_builders import write_csv as write_kaggle_csv

    x, _ = random_digits(3, seed=12)
    write_kaggle_csv(tmp_path / "k" / "test.csv", x, None)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "k", dataset="kaggle")
        catalog.relabel("test:0", 4, note="looked at it")
        catalog.tag("reviewed", ["test:0", "test:1"])
        rows = catalog.select(split="test").rows()
        assert [(r.label, r.original_label) for r in rows] == [
            (4, None),
            (None, None),
            (None, None),
        ]
        assert catalog.select(split="test", labels=4).count() == 1
        assert catalog.select(without_tag="reviewed").count() == 1
        catalog.undo(1)
        assert catalog.select(relabelled=True).count() == 0
        with session_scope(catalog.engine, write=True) as session:
            assert rebuild_state(session) == 2
