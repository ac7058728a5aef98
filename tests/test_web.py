"""The web view through Starlette's TestClient: pages, JSON twins, safety, review decisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from web_fixtures import PLANTED, audit_sources, build_web_catalog, write_sources

from catalog import Catalog
from catalog.audit import AuditReport
from catalog.web.app import create_app
from catalog.web.security import Access

HOSTS = ("testserver",)


@pytest.fixture(scope="session")
def web_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AuditReport]:
    folder = write_sources(tmp_path_factory.mktemp("web") / "src")
    return folder, audit_sources(folder)


@pytest.fixture
def web_catalog(catalog: Catalog, web_sources: tuple[Path, AuditReport]) -> Catalog:
    return build_web_catalog(catalog, *web_sources)


@pytest.fixture
def access() -> Access:
    return Access()


@pytest.fixture
def client(web_catalog: Catalog, access: Access) -> Iterator[TestClient]:
    with TestClient(create_app(web_catalog, access=access, hosts=HOSTS)) as opened:
        yield opened


@pytest.fixture
def writer(client: TestClient, access: Access) -> TestClient:
    """A client that opened the token URL (so holds the cookie) and names its reviewer."""
    response = client.get(f"/?token={access.token}", follow_redirects=False)
    assert response.status_code == 303
    assert "token=" not in response.headers["location"]
    client.cookies.set("catalog_reviewer", "ada")
    return client


def decide(client: TestClient, access: Access, **body: object) -> dict[str, object]:
    response = client.post("/api/decide", json=body, headers={"X-CSRF-Token": access.csrf})
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_overview_counts_split_by_label_and_links_every_cell(client: TestClient) -> None:
    data = client.get("/api/overview").json()
    (digits,) = data["datasets"]
    assert digits["name"] == "digits"
    assert digits["splits"] == {"test": 100, "train": 400}
    assert sum(digits["counts"]["train"].values()) == 400
    assert digits["counts"]["train"]["3"] == 40
    assert data["audit"]["run"] >= 1
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/grid?dataset=digits&split=train&label=3"' in page.text
    assert 'href="/grid?dataset=digits&split=test&label=8"' in page.text


def test_grid_pages_a_selection_and_its_sprite_matches(client: TestClient) -> None:
    data = client.get("/api/grid?split=train&label=3&size=15&page=2").json()
    assert (data["total"], data["pages"], data["page"]) == (40, 3, 2)
    assert [im["index"] for im in data["images"]] == list(range(135, 150))
    assert {im["label"] for im in data["images"]} == {3}
    page = client.get("/grid?split=train&label=3&size=15&page=2")
    assert page.status_code == 200
    assert page.text.count('class="cell') == 15
    sprite = re.search(r"--sprite: url\('([^']+)'\)", page.text)
    assert sprite is not None
    png = client.get(sprite.group(1).replace("&amp;", "&"))
    assert png.headers["content-type"] == "image/png"
    from io import BytesIO

    from PIL import Image

    picture = Image.open(BytesIO(png.content))
    assert picture.size == (25 * 28, 28)  # 15 digits: one row of 25 columns


def test_grid_takes_the_cli_selection_options(client: TestClient) -> None:
    sample = client.get("/api/grid?split=test&sample=7&seed=3").json()
    again = client.get("/api/grid?split=test&sample=7&seed=3").json()
    assert sample["total"] == 7
    assert sample["images"] == again["images"]
    per_label = client.get("/api/grid?split=train&per-label=2").json()
    assert per_label["total"] == 20
    form = client.get("/api/grid?dataset=&split=test&label=&index=&tag=&sample=&seed=0").json()
    assert form["total"] == 100  # the grid's form sends empty fields: not given
    flag = client.get("/api/grid?split=test&relabelled").json()
    assert flag["selection"]["relabelled"] is True
    round_trip = "split=test&label=3,5&index=0:50&tag=a&without-tag=b&relabelled=1&include-excluded=1&where=writer%3D7&sample=3&seed=2"
    from starlette.datastructures import QueryParams

    from catalog.web.params import parse_selection, query_string

    selection = parse_selection(QueryParams(round_trip))
    assert parse_selection(QueryParams(query_string(selection))) == selection
    window = client.get("/api/grid?split=test&index=10:20").json()
    assert [im["index"] for im in window["images"]] == list(range(10, 20))


def test_thumbnail_by_digest_is_cached_for_good(client: TestClient) -> None:
    image = client.get("/api/image/digits/test/4").json()
    response = client.get(image["thumb"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content.startswith(b"\x89PNG")
    assert client.get("/thumb/" + "0" * 64 + ".png").status_code == 404
    assert client.get("/thumb/../../etc/passwd.png").status_code == 404


def test_image_page_shows_labels_sources_files_and_neighbours(
    client: TestClient, web_catalog: Catalog, tmp_path: Path
) -> None:
    web_catalog.select(split="test", index=(4, 5)).export(tmp_path / "out", jobs=1)
    data = client.get("/api/image/digits/test/4?k=5").json()
    assert (data["split"], data["index"], data["label"]) == ("test", 4, 3)
    assert data["original_label"] == 3
    assert any(s["uri"].endswith("t10k-images-idx3-ubyte.gz") for s in data["sources"])
    assert [Path(f["path"]).name for f in data["files"]] == ["000004_3.png"]
    found = data["neighbours"] or follow_neighbours(client, data["neighbours_url"])
    assert len(found) == 5
    assert all(n["id"] != data["id"] for n in found)
    page = client.get("/image/digits/test/4")
    assert "pixelated" in page.text
    assert "000004_3.png" in page.text


def follow_neighbours(client: TestClient, url: str) -> list[dict[str, object]]:
    """The neighbours a page left to follow, once the index is built (at most 60 s)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        answer = client.get(url).json()
        if answer["ready"] or time.monotonic() > deadline:
            found: list[dict[str, object]] = answer["neighbours"]
            return found
        time.sleep(0.05)


def test_audit_page_groups_the_stored_run_by_check(client: TestClient) -> None:
    data = client.get("/api/audit").json()
    assert list(data["checks"]) == ["balance", "odd-images", "label-errors"]
    suspects = data["suspects"]["digits"]["test"]
    flagged = {ref["index"] for ref in suspects[: len(PLANTED)]}
    assert flagged == {index for index, _ in PLANTED}
    page = client.get("/audit")
    assert page.status_code == 200
    assert "/review?dataset=digits&split=test" in page.text


def test_review_walks_suspects_and_each_key_is_a_decision(
    writer: TestClient, access: Access, web_catalog: Catalog
) -> None:
    first = writer.get("/api/review?split=test&n=1").json()
    assert first["position"] == 1
    assert first["next"].endswith("n=2")
    suspect = first["suspect"]
    ref = f"test:{suspect['index']}"
    answer = decide(writer, access, action="relabel", split="test", index=suspect["index"],
                    label=suspect["suggested"])  # fmt: skip
    assert answer["image"]["label"] == suspect["suggested"]  # type: ignore[index]
    answer = decide(writer, access, action="undo", split="test", index=suspect["index"])
    assert answer["image"]["label"] == suspect["given"]  # type: ignore[index]
    decide(writer, access, action="keep", split="test", index=suspect["index"])
    history = web_catalog.history(ref)
    assert [(d.action, d.by) for d in history] == [
        ("relabel", "ada"), ("relabel", "ada"), ("tag", "ada"),
    ]  # fmt: skip
    assert history[1].undoes == history[0].id
    second = writer.get("/api/review?split=test&n=2").json()["suspect"]
    decide(writer, access, action="exclude", split="test", index=second["index"])
    assert web_catalog.history(f"test:{second['index']}")[-1].action == "exclude"


def test_writing_needs_token_csrf_and_a_writable_server(
    client: TestClient, access: Access, web_catalog: Catalog
) -> None:
    body = {"action": "keep", "split": "test", "index": 4, "by": "eve"}
    assert client.post("/api/decide", json=body).status_code == 403  # no token
    wrong = client.get("/?token=wrong", follow_redirects=False)  # reading is open:
    assert (wrong.status_code, wrong.headers["location"]) == (303, "http://testserver/")
    assert "set-cookie" not in wrong.headers  # but nothing to write with
    client.get(f"/?token={access.token}")
    assert client.post("/api/decide", json=body).status_code == 403  # no CSRF header
    cross = {"X-CSRF-Token": access.csrf, "Origin": "http://evil.example"}
    assert client.post("/api/decide", json=body, headers=cross).status_code == 403
    assert client.get("/api/decide").status_code == 405  # GET never writes
    bearer = {"Authorization": f"Bearer {access.token}"}
    assert client.post("/api/decide", json=body, headers=bearer).status_code == 200
    assert [d.by for d in web_catalog.history("test:4")] == ["eve"]


def test_read_only_server_refuses_every_write(web_catalog: Catalog) -> None:
    access = Access(read_only=True)
    with TestClient(create_app(web_catalog, access=access, hosts=HOSTS)) as client:
        bearer = {"Authorization": f"Bearer {access.token}"}
        body = {"action": "keep", "split": "test", "index": 4, "by": "eve"}
        response = client.post("/api/decide", json=body, headers=bearer)
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]
        assert client.get("/").status_code == 200
    assert web_catalog.history("test:4") == []


def test_unknown_host_is_refused(web_catalog: Catalog) -> None:
    with TestClient(create_app(web_catalog), base_url="http://attacker.example") as client:
        assert client.get("/").status_code == 400


HOSTILE = [
    "/api/grid?label=x", "/api/grid?label=11", "/api/grid?page=-1", "/api/grid?page=0",
    "/api/grid?size=100000", "/api/grid?size=abc", "/api/grid?split=nope", "/api/grid?lable=3",
    "/api/grid?index=5:2", "/api/grid?index=a:b", "/api/grid?index=0:99999999999999999999999",
    "/api/grid?limit=99999999999999999999999", "/api/grid?offset=-3", "/api/grid?seed=-1",
    "/api/grid?seed=99999999999999999999999", "/api/grid?sample=5&per-label=1",
    "/api/grid?order=sideways", "/api/grid?dataset=nope", "/api/grid?relabelled=maybe",
    "/api/grid?excluded=1&include-excluded=1", "/api/grid?tag=%00", "/api/grid?dataset=%00", "/api/image/%00/test/1", "/sprite.png?label=x",
    "/sprite.png?size=5000", "/api/image/digits/test/-1", "/api/image/digits/test/abc",
    "/api/image/digits/test/99999999999999999999", "/api/image/digits/nope/1",
    "/api/image/nope/test/1", "/api/image/digits/test/1?k=0", "/api/image/digits/test/1?k=9999",
    "/image/digits/test/999999", "/thumb/xyz.png", "/thumb/%2e%2e%2fetc.png",
    "/api/review?split=nope", "/api/review?n=0", "/api/review?n=x", "/api/review?dataset=nope",
    "/api/audit?limit=-1", "/api/overview?x=1", "/static/../catalog.db", "/nowhere",
    "/api/exports?page=1",
]  # fmt: skip


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_parameters_answer_a_message_never_500(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:200])
    if url.startswith("/api/"):
        assert response.json()["error"]


HOSTILE_BODIES: list[object] = [
    {"action": "burn", "split": "test", "index": 4},
    {"action": "relabel", "split": "test", "index": 4, "label": 12},
    {"action": "relabel", "split": "test", "index": 4, "label": "x"},
    {"action": "relabel", "split": "test", "index": 4},
    {"action": "keep", "split": "test", "index": "4"},
    {"action": "keep", "split": "test", "index": 10**30},
    {"action": "keep", "split": "nope", "index": 4},
    {"action": "keep", "split": "test", "index": 4, "dataset": "nope"},
    {"action": "undo", "split": "test", "index": 5},
    {"action": "keep", "split": "test", "index": 4, "by": ""},
    {"action": "keep", "split": "te\u0000st", "index": 4},
    {"action": "relabel", "split": "test", "index": 4, "label": "\u0000"},
    [1, 2],
    "keep",
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_decisions_answer_a_message_and_change_nothing(
    client: TestClient, access: Access, web_catalog: Catalog, body: object
) -> None:
    headers = {"Authorization": f"Bearer {access.token}"}
    if isinstance(body, dict) and "by" not in body:
        body = {**body, "by": "eve"}
    response = client.post("/api/decide", json=body, headers=headers)
    assert 400 <= response.status_code < 500, (body, response.status_code, response.text[:200])
    assert response.json()["error"]
    assert web_catalog.decisions() == []
    big = client.post("/api/decide", content=b"{" + b" " * 10_000 + b"}", headers=headers)
    assert big.status_code == 413


def test_serve_without_the_extra_names_it(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_cli import run

    import catalog.web

    real = catalog.web.find_spec
    monkeypatch.setattr(
        catalog.web, "find_spec", lambda name: None if name == "uvicorn" else real(name)
    )
    code, _, err = run(db_url, "serve")
    assert code == 1
    assert err == (
        'Error: The web view needs uvicorn, which is not installed: pip install "mnist-catalog[serve]"\n'
    )


def test_serve_refuses_a_busy_port(db_url: str) -> None:
    import socket

    from test_cli import run

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run(db_url, "serve", "--port", str(port))
    assert code == 1
    assert err.startswith(f"Error: Cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_serve_starts_prints_a_token_url_and_answers(tiny_catalog: Catalog, db_url: str) -> None:
    import os
    import subprocess
    import sys

    import httpx

    from catalog.web.server import free_port

    port = free_port()
    env = {**os.environ, "MNIST_CATALOG_DB": db_url, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "catalog", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        url = lines[1].strip()
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/\?token=[\w-]{{20,}}", url), lines
        for _ in range(100):
            try:
                response = httpx.get(url, follow_redirects=False)
                break
            except httpx.ConnectError:
                import time

                time.sleep(0.1)
        assert response.status_code == 303
        assert "catalog_token" in response.headers["set-cookie"]
        overview = httpx.get(f"http://127.0.0.1:{port}/api/overview").json()
        assert [d["name"] for d in overview["datasets"]] == ["tiny"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_exports_page_lists_file_counts_and_out_of_date_exports(
    client: TestClient, web_catalog: Catalog, tmp_path: Path
) -> None:
    web_catalog.select(split="test", index=(0, 10)).export(tmp_path / "out", jobs=1)
    (export,) = client.get("/api/exports").json()["exports"]
    assert (export["files"], export["decisions_since"]) == (10, 0)
    web_catalog.relabel("test:4", 0, by="ada")
    (export,) = client.get("/api/exports").json()["exports"]
    assert export["decisions_since"] == 1
    assert "out of date: 1 decision since" in client.get("/exports").text


def test_unlabeled_images_have_their_own_column_and_grid(catalog: Catalog, tmp_path: Path) -> None:
    from builders import random_digits
    from family_builders import write_csv

    x, y = random_digits(40, seed=3)
    write_csv(tmp_path / "kaggle" / "train.csv", x[:30], y[:30])
    write_csv(tmp_path / "kaggle" / "test.csv", x[30:], None)
    catalog.ingest(tmp_path / "kaggle", dataset="kaggle")
    with TestClient(create_app(catalog, hosts=HOSTS)) as client:
        (kaggle,) = client.get("/api/overview").json()["datasets"]
        assert kaggle["labels"][-1] == "unlabeled"
        assert kaggle["counts"]["test"]["unlabeled"] == 10
        assert sum(kaggle["counts"]["train"].values()) == 30
        page = client.get("/")
        assert page.status_code == 200
        assert 'href="/grid?dataset=kaggle&split=test&unlabeled=1"' in page.text
        grid = client.get("/grid?dataset=kaggle&split=test&unlabeled=1")
        assert grid.text.count('class="cell') == 10
        assert {im["label"] for im in client.get("/api/grid?unlabeled=1").json()["images"]} == {
            None
        }
