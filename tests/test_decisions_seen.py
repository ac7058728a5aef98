"""Decisions that know what their author saw (``seen``), undo by author, and exports
that go out of date when an image they hold is decided about (both backends)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.errors import DecisionError, StaleDecisionError


def latest_id(catalog: Catalog, image: str) -> int | None:
    history = catalog.history(image)
    return history[-1].id if history else None


def test_a_decision_that_saw_the_latest_is_recorded(tiny_catalog: Catalog) -> None:
    first = tiny_catalog.relabel("train:1", 2, by="ada", seen=None)
    assert first.recorded == 1
    second = tiny_catalog.relabel("train:1", 3, by="bob", seen=first.last_id)
    assert second.recorded == 1
    assert [d.label for d in tiny_catalog.history("train:1")] == [2, 3]


def test_a_decision_made_after_a_newer_one_is_refused_and_names_it(
    tiny_catalog: Catalog,
) -> None:
    seen = latest_id(tiny_catalog, "train:1")  # both reviewers see no decision
    assert seen is None
    tiny_catalog.relabel("train:1", 2, by="ada", seen=seen)
    (made,) = tiny_catalog.history("train:1")
    with pytest.raises(
        StaleDecisionError, match=re.escape(f"decision #{made.id}, relabel to 2 by ada")
    ) as caught:
        tiny_catalog.relabel("train:1", 6, by="bob", seen=seen)
    assert caught.value.latest["id"] == made.id
    assert (caught.value.latest["by"], caught.value.latest["label"]) == ("ada", 2)
    assert caught.value.latest["at"] == made.at.isoformat()
    with pytest.raises(StaleDecisionError):
        tiny_catalog.exclude("train:1", reason="smudge", by="bob", seen=None)
    with pytest.raises(StaleDecisionError):
        tiny_catalog.tag("reviewed", "train:1", by="bob", seen=made.id - 1 if made.id > 1 else 0)
    assert [d.by for d in tiny_catalog.history("train:1")] == ["ada"]  # nothing recorded
    # Without seen the decision is recorded whatever came before (the CLI's way).
    assert tiny_catalog.relabel("train:1", 6, by="bob").recorded == 1


def test_undo_latest_undoes_the_authors_own_decision_only(tiny_catalog: Catalog) -> None:
    tiny_catalog.tag("odd", "test:0", by="ada")
    tiny_catalog.relabel("test:0", 4, by="bob")
    summary = tiny_catalog.undo_latest("test:0", by="ada")
    assert summary.recorded == 1
    history = tiny_catalog.history("test:0")
    assert [(d.action, d.by, d.undoes) for d in history] == [
        ("tag", "ada", None), ("relabel", "bob", None), ("untag", "ada", history[0].id),
    ]  # fmt: skip
    with pytest.raises(DecisionError, match="Nothing of yours to undo on test:0: ada has"):
        tiny_catalog.undo_latest("test:0", by="ada")  # ada's tag is undone already
    tiny_catalog.undo_latest("test:0", by="bob")
    assert tiny_catalog.history("test:0")[-1].undoes == history[1].id
    assert tiny_catalog.select(split="test").rows()[0].label == 7  # back to the source


def test_undo_latest_with_a_stale_seen_is_refused(tiny_catalog: Catalog) -> None:
    tiny_catalog.relabel("test:0", 4, by="ada")
    seen = latest_id(tiny_catalog, "test:0")
    tiny_catalog.tag("odd", "test:0", by="bob")
    with pytest.raises(StaleDecisionError, match="by bob"):
        tiny_catalog.undo_latest("test:0", by="ada", seen=seen)
    assert len(tiny_catalog.history("test:0")) == 2


@pytest.mark.parametrize("output", ["folder", "npz"])
def test_an_export_is_out_of_date_when_an_image_it_holds_is_relabelled_out(
    tiny_catalog: Catalog, db_url: str, tmp_path: Path, output: str
) -> None:
    seven = tiny_catalog.select(labels=7)
    held = [f"{row.split}:{row.index}" for row in seven.rows()]
    assert sorted(held) == ["test:0", "train:1"]
    seven.export(tmp_path / "sevens", output=output, jobs=1)
    [record] = tiny_catalog.exports()
    assert record["decisions_since"] == 0
    tiny_catalog.relabel("test:0", 4, by="ada")  # no longer a 7: the selection drops it
    assert [r.index for r in tiny_catalog.select(labels=7).rows()] == [1]
    result = CliRunner().invoke(app, ["--db", db_url, "exports", "--json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.stdout)
    assert listed["decisions_since"] == 1
    tiny_catalog.exclude("train:1", reason="smudge", by="ada")
    [record] = tiny_catalog.exports()
    assert record["decisions_since"] == 2


def test_decisions_about_other_images_leave_an_export_up_to_date(
    tiny_catalog: Catalog, tmp_path: Path
) -> None:
    tiny_catalog.select(labels=7).export(tmp_path / "sevens", jobs=1)
    tiny_catalog.relabel("train:2", 5, by="ada")  # a 4, never in the export
    [record] = tiny_catalog.exports()
    assert record["decisions_since"] == 0
