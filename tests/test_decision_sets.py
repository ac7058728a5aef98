"""Decision sets through the library: one action on many images shares a set id, and
undoing the set reverts every decision of it. Tiny is train [1, 7, 4] and test [7, 1]."""

from __future__ import annotations

import re

import pytest

from catalog import Catalog
from catalog.errors import DecisionError, UnknownTagError


def test_a_tag_set_shares_one_id_and_its_undo_takes_every_tag_off(tiny_catalog: Catalog) -> None:
    summary = tiny_catalog.decide_set(
        "tag", ["train:0", "train:2", "test:1"], tag="blurry", by="ana"
    )
    assert (summary.recorded, summary.tagged, summary.set_id) == (3, 3, summary.first_id)
    records = tiny_catalog.decisions()
    assert [r.set_id for r in records] == [summary.set_id] * 3
    assert tiny_catalog.select(tag="blurry").count() == 3

    undone = tiny_catalog.undo_set(summary.set_id or 0, by="ana")
    assert (undone.recorded, undone.untagged) == (3, 3)
    assert undone.set_id == 4
    assert tiny_catalog.select(tag="blurry").count() == 0
    assert sorted(r.undoes or 0 for r in tiny_catalog.decisions()[3:]) == [1, 2, 3]
    msg = f"Decision set #{summary.set_id} is undone already"
    with pytest.raises(DecisionError, match=re.escape(msg)):
        tiny_catalog.undo_set(summary.set_id or 0)
    # the undo is a set of its own: undoing it puts the tags back
    tiny_catalog.undo_set(undone.set_id or 0)
    assert tiny_catalog.select(tag="blurry").count() == 3


def test_a_relabel_set_and_its_undo_restore_each_label(tiny_catalog: Catalog) -> None:
    tiny_catalog.relabel("train:1", 4, by="bo")  # decided alone first: no set
    summary = tiny_catalog.decide_set("relabel", ["train:0", "train:1", "test:0"], label=9)
    assert (summary.relabelled, summary.set_id) == (3, 2)
    assert [r.label for r in tiny_catalog.select().rows()] == [9, 1, 9, 9, 4]
    tiny_catalog.undo_set(2)
    assert [r.label for r in tiny_catalog.select().rows()] == [7, 1, 1, 4, 4]
    assert tiny_catalog.decisions()[0].set_id is None


def test_exclude_set_skips_images_already_so_and_include_takes_them_back(
    tiny_catalog: Catalog,
) -> None:
    tiny_catalog.exclude("test:1", reason="smudge")
    summary = tiny_catalog.decide_set("exclude", ["test:0", "test:1"], note="bad scan")
    assert (summary.recorded, summary.unchanged, summary.excluded) == (1, 1, 1)
    assert tiny_catalog.select(split="test").count() == 0
    tiny_catalog.undo_set(summary.set_id or 0)
    assert [r.index for r in tiny_catalog.select(split="test").rows()] == [0]


def test_bad_sets_are_refused_whole(tiny_catalog: Catalog) -> None:
    with pytest.raises(DecisionError, match="Unknown action 'paint'"):
        tiny_catalog.decide_set("paint", ["test:0"])
    with pytest.raises(DecisionError, match="Label 42 is not in the label set"):
        tiny_catalog.decide_set("relabel", ["test:0", "test:1"], label=42)
    with pytest.raises(UnknownTagError):
        tiny_catalog.decide_set("untag", ["test:0"], tag="never")
    with pytest.raises(DecisionError, match=re.escape("No decision set #7 in the catalog")):
        tiny_catalog.undo_set(7)
    assert tiny_catalog.decisions() == []
