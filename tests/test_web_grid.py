"""The grid v2 through Starlette's TestClient: badges, facets, sorts, previous/next,
the audit page a page at a time, review progress, the map's JSON, and decision sets
from the page (and their undo) on both backends."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

from starlette.testclient import TestClient
from web_fixtures import PLANTED

from catalog import Catalog
from catalog.audit import AuditReport
from catalog.selection import Selection
from catalog.similarity.layout import tsne_available
from catalog.web.security import Access


@pytest.fixture
def writer(client: TestClient, access: Access) -> TestClient:
    assert client.get(f"/?token={access.token}", follow_redirects=False).status_code == 303
    client.cookies.set("catalog_reviewer", "ada")
    return client


def decide_set(client: TestClient, access: Access, status: int = 200, **body: Any) -> Any:
    response = client.post("/api/decide-set", json=body, headers={"X-CSRF-Token": access.csrf})
    assert response.status_code == status, response.text
    return response.json()


def suspects_in(report: AuditReport) -> dict[tuple[str, int], float]:
    return {
        (f.images[0].split, f.images[0].index): f.details["score"]
        for f in report.findings
        if f.check == "label-errors"
    }


def test_facets_count_the_selection_and_each_narrows_it(
    client: TestClient, web_catalog: Catalog
) -> None:
    web_catalog.tag("blurry", ["test:1", "test:2"], by="ada")
    web_catalog.relabel("test:3", 2, by="ada")
    web_catalog.exclude("test:5", reason="smudge", by="ada")
    facets = client.get("/api/grid?dataset=digits").json()["facets"]
    assert facets["split"] == {"test": 99, "train": 400}
    counted = web_catalog.select(dataset="digits").counts(("label",))
    assert facets["label"] == {str(label): n for (label,), n in counted.items()}
    assert facets["tag"] == {"blurry": 2}
    assert facets["state"] == {"relabelled": 1, "excluded": 1, "tagged": 2, "undecided": 496}
    page = client.get("/grid?dataset=digits")
    links = dict(re.findall(r'<a href="(/grid\?[^"]+)">([^<]+)</a>', page.text))
    narrowed = {text: url.replace("&amp;", "&") for url, text in links.items()}
    assert client.get("/api/" + narrowed["blurry"][1:]).json()["total"] == 2
    assert client.get("/api/" + narrowed["relabelled"][1:]).json()["total"] == 1
    assert client.get("/api/" + narrowed["excluded"][1:]).json()["total"] == 1
    assert client.get("/api/" + narrowed["test"][1:]).json()["total"] == 99
    keeping = client.get("/api/grid?dataset=digits&include-excluded=1").json()["facets"]
    assert keeping["state"]["excluded"] == 1
    assert keeping["split"] == {"test": 100, "train": 400}


def test_grid_badges_show_decisions_and_suspects(
    client: TestClient, web_catalog: Catalog, web_sources: tuple[Path, AuditReport]
) -> None:
    web_catalog.relabel("test:0", 9, by="ada")
    web_catalog.tag("odd", "test:1", by="ada")
    source = web_catalog.select(split="test", index=(0, 1)).rows()[0].original_label
    data = client.get("/api/grid?split=test&include-excluded=1&size=40").json()
    first, second = data["images"][:2]
    assert (first["relabelled"], first["original_label"], first["label"]) == (True, source, 9)
    assert second["tags"] == ["odd"]
    suspects = suspects_in(web_sources[1])
    flagged = {
        (im["split"], im["index"]): im["suspect"]["score"] for im in data["images"] if im["suspect"]
    }
    assert flagged == {key: s for key, s in suspects.items() if key[0] == "test" and key[1] < 40}
    page = client.get("/grid?split=test&size=40").text
    assert f'<span class="badge relabel">{source}→9</span>' in page
    assert '<span class="badge tagged">odd</span>' in page
    assert page.count('class="badge susp"') == len(flagged)


def test_sorts_by_index_seeded_random_and_suspect_score(
    client: TestClient, web_catalog: Catalog, web_sources: tuple[Path, AuditReport]
) -> None:
    by_index = client.get("/api/grid?split=test&size=100").json()["images"]
    one = client.get("/api/grid?split=test&size=100&sort=random&seed=1").json()
    again = client.get("/api/grid?split=test&size=100&sort=random&seed=1").json()
    other = client.get("/api/grid?split=test&size=100&sort=random&seed=2").json()
    ids = [im["id"] for im in by_index]
    assert [im["id"] for im in one["images"]] == [im["id"] for im in again["images"]]
    assert sorted(im["id"] for im in one["images"]) == ids
    assert [im["id"] for im in one["images"]] != ids
    assert [im["id"] for im in one["images"]] != [im["id"] for im in other["images"]]
    assert one["total"] == 100
    drawn = web_catalog.select(split="test", order="random", seed=1).ids().tolist()
    assert [im["id"] for im in one["images"]] == drawn  # the library's own random order
    pages = [client.get(f"/api/grid?split=test&size=30&page={n}&sort=random&seed=1").json()
             for n in (1, 2, 3, 4)]  # fmt: skip
    assert [im["id"] for p in pages for im in p["images"]] == drawn
    ranked = client.get("/api/grid?split=test&sort=suspect").json()
    scores = [im["suspect"]["score"] for im in ranked["images"]]
    test_suspects = {k: s for k, s in suspects_in(web_sources[1]).items() if k[0] == "test"}
    assert ranked["total"] == len(test_suspects) == len(scores)
    assert scores == sorted(scores, reverse=True)
    planted = {index for index, _ in PLANTED}
    assert planted & {im["index"] for im in ranked["images"]}
    assert client.get("/api/grid?sort=sideways").status_code == 400


def test_image_pages_step_to_neighbours_in_their_split_and_back_to_the_grid(
    client: TestClient,
) -> None:
    first = client.get("/api/image/digits/test/0").json()
    assert (first["prev"], first["next"]) == (None, "/image/digits/test/1")
    assert first["grid"] == "/grid?dataset=digits&split=test&page=1"
    last = client.get("/api/image/digits/train/399").json()
    assert (last["prev"], last["next"]) == ("/image/digits/train/398", None)
    page = client.get("/image/digits/test/50").text
    assert 'href="/image/digits/test/49" rel="prev"' in page
    assert 'href="/image/digits/test/51" rel="next"' in page
    assert 'href="/grid?dataset=digits&amp;split=test&amp;page=1" rel="up"' in page
    small = client.get("/api/grid?dataset=digits&split=test&size=10&page=6").json()
    assert 50 in [im["index"] for im in small["images"]]


def test_audit_pages_reach_every_finding(
    client: TestClient, web_sources: tuple[Path, AuditReport]
) -> None:
    report = web_sources[1]
    expected = [f.message for f in report.findings if f.check == "label-errors"]
    assert len(expected) > 2
    overview = client.get("/api/audit?limit=2").json()["checks"]["label-errors"]
    assert (overview["count"], overview["pages"]) == (len(expected), -(-len(expected) // 2))
    seen: list[str] = []
    for page in range(1, overview["pages"] + 1):
        part = client.get(f"/api/audit?check=label-errors&limit=2&page={page}").json()
        assert list(part["checks"]) == ["label-errors"]
        seen += [f["message"] for f in part["checks"]["label-errors"]["findings"]]
    assert seen == expected
    html = client.get("/audit?limit=2").text
    assert 'href="/audit?check=label-errors&amp;limit=2&amp;page=2"' in html
    assert (
        client.get(
            f"/api/audit?check=label-errors&limit=2&page={overview['pages'] + 1}"
        ).status_code
        == 400
    )
    assert client.get("/api/audit?page=2").status_code == 400
    assert client.get("/api/audit?check=nope").status_code == 400


def test_review_counts_done_and_left_and_skips_decided_suspects(
    writer: TestClient, access: Access, web_catalog: Catalog
) -> None:
    start = writer.get("/api/review?split=test").json()
    total = start["progress"]["total"]
    assert (start["progress"]["done"], start["progress"]["left"]) == (0, total)
    first = start["suspect"]["index"]
    web_catalog.tag("reviewed", f"test:{first}", by="ada")
    after = writer.get("/api/review?split=test").json()["progress"]
    assert (after["done"], after["left"]) == (1, total - 1)
    skipping = writer.get("/api/review?split=test&undecided=1&n=1").json()
    assert skipping["position"] == 2  # the first suspect is decided: the page moves on
    assert skipping["prev"] is None
    assert "undecided=1" in (skipping["next"] or "undecided=1")
    assert "1 done · " in writer.get("/review?split=test").text


def test_map_json_draws_the_selection_quick_layout_first_then_tsne(
    client: TestClient, web_catalog: Catalog, web_sources: tuple[Path, AuditReport]
) -> None:
    data = client.get("/api/map?dataset=digits").json()
    points = data["points"]
    assert (data["total"], data["drawn"]) == (500, 500)
    ids = web_catalog.select(dataset="digits").ids().tolist()
    assert sorted(points["id"]) == sorted(ids)
    assert min(points["x"]) == 0
    assert max(points["x"]) == 1
    assert all(0 <= y <= 1 for y in points["y"])
    labels = {row.id: row.label for row in web_catalog.select(dataset="digits").rows()}
    assert points["label"] == [labels[i] for i in points["id"]]
    suspected = sum(1 for s in points["score"] if s > 0)
    assert suspected == len(suspects_in(web_sources[1]))
    assert data["layout"] == "fisher"  # the quick layout first ...
    assert data["pending"] is tsne_available()  # ... while t-SNE is computed
    if tsne_available():
        assert 'id="map-pending"' in client.get("/map?dataset=digits").text
        web_catalog.map_points(Selection(dataset="digits"), wait=True)
        later = client.get("/api/map?dataset=digits").json()
        assert (later["layout"], later["pending"]) == ("tsne", False)
        assert later["points"]["id"] == points["id"]
        assert 'id="map-pending"' not in client.get("/map?dataset=digits").text
    sample = client.get("/api/map?dataset=digits&points=50&seed=4").json()
    assert (sample["total"], sample["drawn"]) == (500, 50)
    assert sample == client.get("/api/map?dataset=digits&points=50&seed=4").json()
    page = client.get("/map?split=test&color=score").text
    assert '<canvas id="map"' in page
    assert "/static/map.js" in page
    opened = client.get(f"/api/grid?ids={','.join(map(str, points['id'][:7]))}").json()
    assert [im["id"] for im in opened["images"]] == points["id"][:7]
    assert client.get("/api/grid?ids=1,x").status_code == 400
    for thread in threading.enumerate():  # the other maps' t-SNE layouts: let them end
        if thread.name == "map-layout":
            thread.join(timeout=120)


def test_a_decision_set_from_the_grid_and_its_undo(
    writer: TestClient, access: Access, web_catalog: Catalog
) -> None:
    images = ["test:3", "test:4", "test:5"]
    tagged = decide_set(writer, access, action="tag", tag="blurry", dataset="digits", images=images)
    assert tagged["recorded"] == 3
    assert tagged["set"] is not None
    assert [im["tags"] for im in tagged["images"]] == [["blurry"]] * 3
    assert web_catalog.select(tag="blurry").count() == 3
    assert {r.by for r in web_catalog.decisions()} == {"ada"}
    relabelled = decide_set(writer, access, action="relabel", label=1, dataset="digits",
                            images=["test:3", "test:4"])  # fmt: skip
    assert [im["label"] for im in relabelled["images"]] == [1, 1]
    undone = decide_set(writer, access, action="undo", set=tagged["set"], dataset="digits",
                        images=images)  # fmt: skip
    assert [im["tags"] for im in undone["images"]] == [[], [], []]
    assert web_catalog.select(tag="blurry").count() == 0
    assert [r.label for r in web_catalog.select(split="test", index=(3, 5)).rows()] == [1, 1]
    grid = writer.get("/grid?split=test&size=10").text
    assert grid.count('class="badge relabel"') == 2
    assert 'class="badge tagged"' not in grid


def test_decision_sets_refuse_bad_requests_and_change_nothing(
    writer: TestClient, access: Access, web_catalog: Catalog
) -> None:
    good: dict[str, Any] = {"action": "tag", "tag": "t", "dataset": "digits", "images": ["test:1"]}
    cases: list[tuple[dict[str, Any], int]] = [
        ({**good, "action": "paint"}, 400),
        ({**good, "images": []}, 400),
        ({**good, "images": ["test:x"]}, 400),
        ({**good, "images": ["test:99999999999999999999"]}, 400),
        ({**good, "images": [f"test:{i}" for i in range(1001)]}, 400),
        ({**good, "tag": "no spaces"}, 400),
        ({**good, "action": "relabel", "label": 42}, 400),
        ({**good, "images": ["test:100000"]}, 404),
        ({**good, "action": "undo", "set": 77}, 400),
        ({**good, "action": "undo", "set": "x"}, 400),
    ]
    for body, status in cases:
        decide_set(writer, access, status, **body)
    deep = writer.post("/api/decide-set", content=b"[" * 5000,
                       headers={"X-CSRF-Token": access.csrf})  # fmt: skip
    assert deep.status_code == 400
    no_csrf = writer.post("/api/decide-set", json=good)
    assert no_csrf.status_code == 403
    assert web_catalog.decisions() == []


HOSTILE = [
    "/grid?sort=%00",
    "/grid?sort=random&seed=-1",
    "/grid?sort=random&seed=99999999999999999999999",
    "/grid?ids=" + ",".join(["1"] * 1001),
    "/grid?ids=1e9",
    "/grid?ids=-1",
    "/sprite.png?ids=x",
    "/sprite.png?ids=1&split=test",
    "/map?points=0",
    "/map?points=100000",
    "/map?color=purple",
    "/map?split=nope",
    "/map?seed=x",
    "/audit?check=label-errors&page=0",
    "/audit?check=label-errors&page=x",
    "/review?undecided=maybe",
    "/grid?page=100000",
    "/image/digits/test/2147483647",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_grid_map_and_audit_parameters_answer_4xx(client: TestClient, url: str) -> None:
    for path in (url, "/api" + url if not url.startswith("/sprite") else url):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])


def test_ids_naming_no_image_show_an_empty_grid(client: TestClient) -> None:
    for url in ("/api/grid?ids=", "/api/grid?ids=99999999999999999", "/api/grid?ids=2147483647"):
        data = client.get(url).json()
        assert data["images"] == []
