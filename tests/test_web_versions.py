"""The versions page and the diff of two versions drawn as a grid of thumbnails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from test_versions import write_sources

from catalog import Catalog
from catalog.web.app import create_app
from catalog.web.security import Access

HOSTS = ("testserver",)


@pytest.fixture
def client(catalog: Catalog, tmp_path: Path) -> Iterator[TestClient]:
    catalog.ingest(write_sources(tmp_path / "src"), dataset="digits")
    catalog.freeze("v1", catalog.select(split="train", index=(0, 20)), note="first")
    catalog.relabel("train:3", 7)
    catalog.exclude("train:4", reason="smudged")
    catalog.freeze("v2", catalog.select(split="train", index=(0, 22)))
    with TestClient(create_app(catalog, access=Access(), hosts=HOSTS)) as opened:
        yield opened


def test_versions_page_lists_versions_and_its_twin(client: TestClient) -> None:
    grid = client.get("/api/grid?version=v1&label=3").json()
    assert grid["total"] == 2  # train:3 and train:13, by v1's frozen labels
    assert 'name="version" value="v1"' in client.get("/grid?version=v1").text
    page = client.get("/versions")
    assert page.status_code == 200
    assert '<a href="/grid?version=v1"><b>v1</b></a>' in page.text
    assert "first" in page.text
    assert "train 20" in page.text
    assert '<a href="/versions">Versions</a>' in page.text
    rows = client.get("/api/versions").json()["versions"]
    assert [(r["name"], r["splits"]) for r in rows] == [
        ("v1", {"train": 20}),
        ("v2", {"train": 21}),
    ]


def test_diff_page_draws_added_removed_and_relabelled(client: TestClient) -> None:
    data = client.get("/api/versions/diff?a=v1&b=v2").json()
    assert [(i["split"], i["index"]) for i in data["images"]["added"]] == [
        ("train", 20), ("train", 21),
    ]  # fmt: skip
    assert [i["index"] for i in data["images"]["removed"]] == [4]
    assert [(i["index"], i["old_label"], i["label"]) for i in data["images"]["relabelled"]] == [
        (3, 3, 7)
    ]
    page = client.get("/versions/diff?a=v1&b=v2")
    assert page.status_code == 200
    assert page.text.count('class="added"') == 2
    assert page.text.count('class="removed"') == 1
    assert 'class="relabelled" href="/image/digits/train/3"' in page.text
    assert "train:3 [3 → 7]" in page.text
    for image in data["images"]["added"]:
        assert f'src="/thumb/{image["sha256"]}.png"' in page.text
        assert client.get(f"/thumb/{image['sha256']}.png").status_code == 200
    assert client.get("/api/versions/diff?a=v1&b=current").json()["removed"]["count"] == 1


@pytest.mark.parametrize(
    "query", ["a=v1&b=nope", "a=v1", "a=../x&b=v1", "a=v1&b=v2&c=1", "a=current&b=current"]
)
def test_diff_page_refuses_bad_parameters_with_a_4xx(client: TestClient, query: str) -> None:
    page = client.get(f"/versions/diff?{query}")
    assert 400 <= page.status_code < 500
    twin = client.get(f"/api/versions/diff?{query}")
    assert 400 <= twin.status_code < 500
    assert twin.json()["error"]
