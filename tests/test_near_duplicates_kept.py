"""An audit after an ingest searches only the new images (and those near them) for near
duplicates, and finds the pairs a full search finds (catalog/audit/kept_pairs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import write_image_folder
from test_near_duplicates import jpeg, shifted, synthetic_digits

from catalog import Catalog
from catalog.audit.kept_pairs import _within_reach, state_key
from catalog.audit.kept_state import read_state, write_state
from catalog.db.engine import session_scope
from catalog.similarity import index as ivf
from catalog.similarity import neighbours as rule
from catalog.similarity.index import build_index
from catalog.similarity.neighbours import NeighbourIndex, candidate_pairs

OLD, NEW = 240, 40


def planted(tmp_path: Path) -> tuple[Path, Path]:
    """Old images with one planted pair among them; new ones holding a copy of an old
    image (which becomes that image's nearest neighbour), a pair of two new images, and a
    byte-identical copy of an old image (an exact duplicate, never a near one)."""
    pixels, labels = synthetic_digits(OLD + NEW, seed=5)
    pixels[7] = shifted(pixels[3], 1, 0)  # an old pair
    pixels[OLD + 2] = shifted(pixels[20], 0, 1)  # a new copy of an old image
    pixels[OLD + 5] = jpeg(pixels[OLD + 4])  # two new images
    pixels[OLD + 9] = pixels[30]  # an exact duplicate
    old = write_image_folder(tmp_path / "old", {"train": (pixels[:OLD], labels[:OLD])})
    new = write_image_folder(tmp_path / "new", {"extra": (pixels[OLD:], labels[OLD:])})
    return old, new


def near_pairs(
    catalog: Catalog, *, full: bool = False
) -> tuple[set[tuple[Any, ...]], dict[str, Any]]:
    report = catalog.audit(dataset="drawn", checks=["near-duplicates"], full=full)
    pairs = {
        (tuple((r.split, r.index) for r in f.images), f.details["distance"])
        for f in report.findings
    }
    return pairs, report.summary["near-duplicates"]["drawn"]


@pytest.mark.parametrize("search", ["exact", "faiss"])
def test_incremental_search_finds_what_a_full_one_finds(
    tmp_path: Path, db_url: str, search: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if search == "faiss":
        pytest.importorskip("faiss")
        # faiss above 100 images: cells of 64, all probed at this size, so exact answers.
        monkeypatch.setattr(ivf, "EXACT_LIMIT", 100)
    old, new = planted(tmp_path)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        first, summary = near_pairs(catalog)
        assert first == {((("train", 3), ("train", 7)), 0.0)}
        assert summary["searched"] == OLD
        catalog.ingest(new, dataset="drawn")
        again, summary = near_pairs(catalog)
        assert summary["reused"] > 0
        assert summary["searched"] < OLD + NEW - 1
        assert summary["indexed"] == OLD + NEW - 1  # the exact duplicate is not indexed
        assert summary["reuse"].startswith(f"{NEW - 1:,} new and ")
        full, summary = near_pairs(catalog, full=True)
        assert summary["reuse"] == "every image searched (--full)"
        assert again == full
        assert {p for p, _ in full} == {
            (("train", 3), ("train", 7)),
            (("extra", 2), ("train", 20)),
            (("extra", 4), ("extra", 5)),
        }
        # The full search was kept too: nothing new, nothing searched but the pairs' images.
        _, summary = near_pairs(catalog)
        assert summary["searched"] == 6
        assert summary["reuse"].startswith("0 new and 6 nearby images searched")


def test_old_pair_dropped_when_new_images_crowd_it_out(tmp_path: Path, db_url: str) -> None:
    """A new image can push an old pair out of the candidate rule; the incremental search
    then drops it as the full one does (here: neither keeps it, or both do)."""
    pixels, _ = synthetic_digits(60, seed=8)
    base = pixels[0]
    crowd = np.stack([shifted(base, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    crowd[4] = jpeg(base, 95)
    old = write_image_folder(tmp_path / "old", {"train": (np.concatenate([pixels, crowd[:1]]),
                                                            np.zeros(61, np.int64))})  # fmt: skip
    more = np.repeat(crowd[1:], 3, axis=0)  # byte-identical triples: one representative each
    more[1::3] = jpeg_all(crowd[1:], 90)
    more[2::3] = jpeg_all(crowd[1:], 80)
    new = write_image_folder(tmp_path / "new", {"extra": (more, np.zeros(len(more), np.int64))})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        near_pairs(catalog)
        catalog.ingest(new, dataset="drawn")
        again, summary = near_pairs(catalog)
        full, _ = near_pairs(catalog, full=True)
    assert summary["reused"] > 0
    assert again == full


def jpeg_all(images: np.ndarray, quality: int) -> np.ndarray:
    return np.stack([jpeg(image, quality) for image in images])


def test_what_makes_the_next_search_full(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = planted(tmp_path)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        _, summary = near_pairs(catalog)
        assert summary["reuse"] == "every image searched (nothing kept under these settings)"
        # Other settings: the kept search is not used, and is replaced.
        monkeypatch.setattr(rule, "CANDIDATE_RADIUS", 0.16)
        _, summary = near_pairs(catalog)
        assert summary["reuse"] == "every image searched (nothing kept under these settings)"
        _, summary = near_pairs(catalog)
        assert summary["reuse"].startswith("0 new and ")
        monkeypatch.undo()
        # Only some splits audited: kept apart from the whole dataset's search.
        report = catalog.audit(dataset="drawn", splits=["train"], checks=["near-duplicates"])
        assert report.summary["near-duplicates"]["drawn"]["reuse"].startswith("every image")
        # A split ingested again has new images in place of the searched ones.
        catalog.ingest(new, dataset="drawn")
        _, summary = near_pairs(catalog)
        catalog.ingest(old, dataset="drawn", replace=True)
        pairs, summary = near_pairs(catalog)
        assert summary["reuse"] == (
            "every image searched (images searched before are gone (removed or ingested again))"
        )
        assert len(pairs) == 3


def test_audits_of_some_splits_and_of_all_taking_turns_each_build_on_their_own(
    tmp_path: Path, db_url: str
) -> None:
    old, new = planted(tmp_path)
    fresh = "every image searched (nothing kept under these settings)"

    def of_splits(*splits: str) -> tuple[set[tuple[Any, ...]], str]:
        report = catalog.audit(dataset="drawn", splits=list(splits), checks=["near-duplicates"])
        pairs = {tuple((r.split, r.index) for r in f.images) for f in report.findings}
        return pairs, report.summary["near-duplicates"]["drawn"]["reuse"]

    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        catalog.ingest(new, dataset="drawn")
        whole, summary = near_pairs(catalog)
        assert summary["reuse"] == fresh
        train, reuse = of_splits("train")
        assert reuse == fresh
        assert train == {(("train", 3), ("train", 7))}
        again, summary = near_pairs(catalog)  # the whole dataset's search is still kept
        assert summary["reuse"].startswith("0 new and ")
        assert again == whole
        pairs, reuse = of_splits("train")  # the part's search is kept beside it
        assert reuse.startswith("0 new and ")
        assert pairs == train
        # Other splits take the one slot for a part: a full search, then built on.
        extra, reuse = of_splits("extra")
        assert reuse == fresh
        assert extra == {(("extra", 4), ("extra", 5))}
        assert of_splits("train")[1] == fresh
        assert near_pairs(catalog)[1]["reuse"].startswith("0 new and ")


def candidates_by_image(index: NeighbourIndex, n_old: int) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for block in candidate_pairs(index, rows=np.arange(n_old)):
        for a, b in zip(block.first.tolist(), block.second.tolist(), strict=True):
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_image_whose_candidates_change_is_searched_again(seed: int) -> None:
    """The rule the incremental search rests on: an added image changes an earlier image's
    candidates only within its reach. Crowded clusters, so that many do change."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (12, 8)).astype(np.float32)
    points = centres[rng.integers(0, 12, 400)] + rng.normal(0, 0.06, (400, 8)).astype(np.float32)
    old, new = points[:320], points[320:]
    before = NeighbourIndex(np.arange(320), old, build_index(old))
    reach = np.empty((320, 2), np.float32)
    list(candidate_pairs(before, reach=reach))
    after = NeighbourIndex(np.arange(400), points, build_index(points))
    changed = set()
    for image in range(320):  # each old image's own candidates, before and after
        mine: list[set[int]] = [set(), set()]
        for k, index in enumerate((before, after)):
            for block in candidate_pairs(index, rows=np.array([image])):
                mine[k] |= set(block.first.tolist()) | set(block.second.tolist())
        if mine[0] != mine[1]:
            changed.add(image)
    full_reach = np.full((400, 2), np.inf, np.float32)
    full_reach[:320] = reach
    searched = set(_within_reach(after.search, new, full_reach).tolist())
    assert len(changed) >= 20
    assert changed <= searched
    assert len(searched - set(range(320, 400))) < 320  # not every image: the rule narrows


def test_a_search_kept_beside_another_index_is_not_used(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two audits keeping their searches at once: one's search beside the other's index
    (simulated: the first search's rows put back after a second full search) is refused."""
    pytest.importorskip("faiss")
    monkeypatch.setattr(ivf, "EXACT_LIMIT", 100)
    old, _ = planted(tmp_path)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        near_pairs(catalog)
        with session_scope(catalog.engine) as session:
            key = state_key(())
            first = read_state(session, 1, "near-duplicates", key)
        assert first is not None
        near_pairs(catalog, full=True)  # a new index, with a new token
        with session_scope(catalog.engine, write=True) as session:
            searched = {name: first[name] for name in ("searched", "meta", "pairs")}
            assert write_state(session, 1, "near-duplicates", key, searched, replace_all=False)
        pairs, summary = near_pairs(catalog)
    assert summary["reuse"] == (
        "every image searched (the kept index and search disagree (two audits at once?))"
    )
    assert len(pairs) == 1


def test_audit_full_on_the_command_line(tmp_path: Path, db_url: str) -> None:
    from typer.testing import CliRunner

    from catalog.cli import app

    old, _ = planted(tmp_path)
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
    base = ["--db", db_url, "audit", "--check", "near-duplicates"]
    lines = []
    for extra in ([], [], ["--full"]):
        result = CliRunner().invoke(app, [*base, *extra])
        lines.append([line for line in result.stdout.splitlines() if "↻" in line])
    assert lines[0] == ["  ↻ drawn: every image searched (nothing kept under these settings)"]
    assert lines[1][0].startswith(
        f"  ↻ drawn: 0 new and 2 nearby images searched against {OLD - 0:,}; "
    )
    assert lines[2] == ["  ↻ drawn: every image searched (--full)"]


def test_kept_blobs_come_back_whole_across_parts(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blobs larger than a row's part, written whole or in pieces, read back as written."""
    from catalog.audit import kept_state

    monkeypatch.setattr(kept_state, "PART", 1000)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, 4321, dtype=np.uint8)

    def in_pieces(sink: Callable[[bytes], None]) -> None:
        for start in range(0, 4321, 333):
            sink(big[start : start + 333].tobytes())

    with Catalog.open(db_url) as catalog:
        catalog.ingest(planted(tmp_path)[0], dataset="drawn")
        with session_scope(catalog.engine, write=True) as session:
            blobs = {"whole": big, "pieces": in_pieces, "empty": b"", "exact": big[:2000].tobytes()}
            assert write_state(session, 1, "test", "k1", blobs)  # type: ignore[arg-type]
        with session_scope(catalog.engine) as session:
            back = read_state(session, 1, "test", "k1")
            assert read_state(session, 1, "test", "k2") is None
    assert back == {"whole": big.tobytes(), "pieces": big.tobytes(), "empty": b"",
                    "exact": big[:2000].tobytes()}  # fmt: skip


def test_a_reingested_only_split_with_the_same_ids_is_searched_again(
    tmp_path: Path, db_url: str
) -> None:
    """Replacing a dataset's only split can give the new images the ids of the old ones
    (SQLite reuses them); their pixels tell them apart, so nothing kept is reused."""
    old, _ = planted(tmp_path)
    pixels, labels = synthetic_digits(OLD, seed=11)
    pixels[9] = shifted(pixels[2], 0, 1)
    other = write_image_folder(tmp_path / "other", {"train": (pixels, labels)})
    with Catalog.open(db_url) as catalog:
        catalog.ingest(old, dataset="drawn")
        near_pairs(catalog)
        catalog.ingest(other, dataset="drawn", replace=True)
        pairs, summary = near_pairs(catalog)
        full, _ = near_pairs(catalog, full=True)
    assert summary["reuse"] == (
        "every image searched (images searched before are gone (removed or ingested again))"
    )
    assert pairs == full == {((("train", 2), ("train", 9)), 0.0)}
