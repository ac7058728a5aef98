"""The web view's safety and correctness: decisions that know what they saw (409),
undo by reviewer, token cookies per port, the Host check off loopback, neighbours
that follow the page, and the small answers (404, 400, favicon, help)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from typer.testing import CliRunner
from web_fixtures import audit_sources, build_web_catalog, write_sources

from catalog import Catalog
from catalog.audit import AuditReport
from catalog.cli import app as cli_app
from catalog.web.app import create_app
from catalog.web.security import Access
from catalog.web.server import LOCAL_HOSTS, allowed_hosts

HOSTS = ("testserver",)


@pytest.fixture(scope="module")
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


def writer(web_catalog: Catalog, access: Access, name: str) -> TestClient:
    """A second browser: its own cookies, the token opened, its reviewer's name set."""
    opened = TestClient(create_app(web_catalog, access=access, hosts=HOSTS))
    assert opened.get(f"/?token={access.token}", follow_redirects=False).status_code == 303
    opened.cookies.set("catalog_reviewer", name)
    return opened


def post(client: TestClient, access: Access, **body: object) -> tuple[int, dict[str, object]]:
    response = client.post("/api/decide", json=body, headers={"X-CSRF-Token": access.csrf})
    answer: dict[str, object] = response.json()
    return response.status_code, answer


def test_two_reviewers_on_one_image_the_second_gets_409_and_nothing_is_recorded(
    web_catalog: Catalog, access: Access
) -> None:
    ada, bob = writer(web_catalog, access, "ada"), writer(web_catalog, access, "bob")
    shown = ada.get("/api/review?split=test&n=1").json()["suspect"]
    assert shown == bob.get("/api/review?split=test&n=1").json()["suspect"]
    assert shown["decision"] is None  # both pages saw no decision
    image = {"split": "test", "index": shown["index"]}
    status, answer = post(ada, access, action="relabel", label=2, seen=None, **image)
    assert status == 200
    made = answer["image"]["decision"]  # type: ignore[index]
    status, refused = post(bob, access, action="relabel", label=6, seen=None, **image)
    assert status == 409
    latest = refused["latest"]
    assert (latest["id"], latest["by"], latest["action"], latest["label"]) == (  # type: ignore[index]
        made, "ada", "relabel", 2,
    )  # fmt: skip
    assert "by ada at " in str(refused["error"])
    assert str(refused["error"]).endswith("nothing recorded")
    assert [(d.by, d.label) for d in web_catalog.history(f"test:{shown['index']}")] == [("ada", 2)]
    # Bob looks again (the page refreshes the image) and decides on what he now sees.
    again = bob.get(f"/api/image/digits/test/{shown['index']}").json()
    assert again["decision"] == made
    status, _ = post(bob, access, action="relabel", label=6, seen=again["decision"], **image)
    assert status == 200
    # Ada's u undoes her own decision only, and only if she has seen Bob's.
    status, refused = post(ada, access, action="undo", seen=made, **image)
    assert (status, refused["latest"]["by"]) == (409, "bob")  # type: ignore[index]
    latest_id = web_catalog.history(f"test:{shown['index']}")[-1].id
    status, answer = post(ada, access, action="undo", seen=latest_id, **image)
    assert status == 200
    history = web_catalog.history(f"test:{shown['index']}")
    assert [(d.by, d.action, d.undoes) for d in history] == [
        ("ada", "relabel", None), ("bob", "relabel", None), ("ada", "relabel", made),
    ]  # fmt: skip
    status, refused = post(ada, access, action="undo", seen=history[-1].id, **image)
    assert (status, refused["error"]) == (400, (
        f"Nothing of yours to undo on test:{shown['index']}: ada has no decision about it "
        "that is not undone"
    ))  # fmt: skip


def test_the_review_page_carries_the_latest_decision_it_shows(
    client: TestClient, web_catalog: Catalog
) -> None:
    page = client.get("/review?split=test&n=1")
    assert 'data-seen=""' in page.text
    index = client.get("/api/review?split=test&n=1").json()["suspect"]["index"]
    web_catalog.tag("odd", f"test:{index}", by="ada")
    (made,) = web_catalog.history(f"test:{index}")
    assert f'data-seen="{made.id}"' in client.get("/review?split=test&n=1").text
    assert client.get(f"/api/image/digits/test/{index}").json()["decision"] == made.id
    (cell,) = client.get(f"/api/grid?split=test&index={index}:{index + 1}").json()["images"]
    assert cell["decision"] == made.id  # a grid's decisions carry seen as well
    neighbour = web_catalog.lookalikes(made_id_of(client, index), "digits", 1)[0].row
    web_catalog.tag("odd", f"{neighbour.split}:{neighbour.index}", by="ada")
    again = web_catalog.lookalikes(made_id_of(client, index), "digits", 1)[0].row
    assert again.decision == web_catalog.history(f"{neighbour.split}:{neighbour.index}")[-1].id


def made_id_of(client: TestClient, index: int) -> int:
    image_id: int = client.get(f"/api/image/digits/test/{index}").json()["id"]
    return image_id


def test_token_cookies_are_named_after_the_port(web_catalog: Catalog) -> None:
    first, second = Access(), Access()
    one = TestClient(create_app(web_catalog, access=first), base_url="http://127.0.0.1:8000")
    two = TestClient(create_app(web_catalog, access=second), base_url="http://127.0.0.1:8001")
    opened = one.get(f"/?token={first.token}", follow_redirects=False)
    assert opened.headers["set-cookie"].startswith(f"catalog_token_8000={first.token};")
    opened = two.get(f"/?token={second.token}", follow_redirects=False)
    assert opened.headers["set-cookie"].startswith(f"catalog_token_8001={second.token};")
    # One browser holds both cookies (they are shared by every port of a host):
    # each server still finds its own, so opening the second keeps the first writing.
    both = {"catalog_token_8000": first.token, "catalog_token_8001": second.token}
    for client, access in ((one, first), (two, second)):
        client.cookies.clear()
        for name, value in both.items():
            client.cookies.set(name, value)
        assert f'content="{access.csrf}"' in client.get("/").text  # can write
    one.cookies.clear()
    one.cookies.set("catalog_token_8000", second.token)  # the other server's token
    assert 'name="csrf-token" content=""' in one.get("/").text


def test_off_loopback_the_host_check_stays_with_the_names_given() -> None:
    assert allowed_hosts("127.0.0.1", []) == ([*LOCAL_HOSTS], None)
    hosts, warning = allowed_hosts("0.0.0.0", ["catalog.lan", "10.0.0.5"])
    assert hosts == [*LOCAL_HOSTS, "catalog.lan", "10.0.0.5"]
    assert warning == (
        "listening on 0.0.0.0: anyone who reaches this port can read the catalog. Requests "
        "must name the server as 127.0.0.1, localhost, catalog.lan, 10.0.0.5"
    )
    hosts, warning = allowed_hosts("10.0.0.5", [])
    assert hosts == [*LOCAL_HOSTS, "10.0.0.5"]
    assert warning is not None
    assert warning.endswith("(add the names others use with --allow-host NAME)")
    assert "*" not in allowed_hosts("::", [])[0]


def test_an_app_with_allowed_names_refuses_every_other_host(web_catalog: Catalog) -> None:
    hosts, _ = allowed_hosts("0.0.0.0", ["catalog.lan"])
    app = create_app(web_catalog, hosts=hosts)
    assert TestClient(app, base_url="http://catalog.lan:8000").get("/").status_code == 200
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/").status_code == 200
    assert TestClient(app, base_url="http://rebound.example").get("/").status_code == 400


def test_serve_off_loopback_warns_and_keeps_the_host_check(db_url: str) -> None:
    import os
    import subprocess
    import sys

    import httpx

    from catalog.web.server import free_port

    port = free_port()
    env = {**os.environ, "MNIST_CATALOG_DB": db_url, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "catalog", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--allow-host", "catalog.lan", "--read-only"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        assert server.stdout is not None
        warning = server.stderr.readline()
        assert warning.startswith("Warning: listening on 0.0.0.0: anyone who reaches")
        assert "127.0.0.1, localhost, catalog.lan" in warning
        server.stdout.readline()
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}/"  # no token
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/overview")
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert answer.status_code == 200
        rebound = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
        named = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"catalog.lan:{port}"})
        assert named.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_reading_is_open_with_a_wrong_token(client: TestClient) -> None:
    page = client.get("/?token=wrong")  # redirected to the page without it
    assert page.status_code == 200
    assert page.url.query == b""
    assert "open the URL with the token to decide" in page.text


def test_read_only_review_does_not_ask_for_a_token(web_catalog: Catalog) -> None:
    access = Access(read_only=True)
    with TestClient(create_app(web_catalog, access=access, hosts=HOSTS)) as client:
        page = client.get(f"/review?split=test&token={access.token}").text
    assert 'data-read-only="true"' in page
    assert "open the URL with the token" not in page


def test_unknown_datasets_answer_404(client: TestClient) -> None:
    for url in ("/audit?dataset=nope", "/api/audit?dataset=nope", "/api/review?dataset=nope"):
        response = client.get(url)
        assert response.status_code == 404, url
    assert client.get("/api/audit?dataset=nope").json()["error"] == (
        "No dataset 'nope' in the catalog: expected one of digits"
    )


def test_a_page_past_the_end_answers_400_with_a_message(client: TestClient) -> None:
    response = client.get("/api/grid?split=test&size=60&page=100000")
    assert response.status_code == 400
    assert response.json()["error"] == "No page 100000: the selection has 2 page(s) of 60"
    assert client.get("/grid?split=test&page=100000").status_code == 400
    assert client.get("/api/grid?split=test&size=60&page=2").status_code == 200


def test_a_favicon_is_served(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert len(icon.content) < 4096


def test_serve_help_names_the_extra() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert 'pip install "mnist-catalog[serve]"' in result.output
    assert "--allow-host NAME" in result.output


def test_the_first_image_page_answers_before_the_neighbour_index_is_built(
    web_catalog: Catalog, access: Access, db_url: str
) -> None:
    with TestClient(create_app(web_catalog, access=access, hosts=HOSTS)) as client:
        page = client.get("/image/digits/test/4?k=5").text  # the first: nothing built yet
        assert "neighbours follow" in page
        assert 'data-follow="/api/neighbours/digits/test/4?k=5"' in page
        deadline = time.monotonic() + 60
        while not (answer := client.get("/api/neighbours/digits/test/4?k=5").json())["ready"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len(answer["neighbours"]) == 5
        later = client.get("/api/image/digits/test/4?k=5").json()
        assert later["neighbours"] == answer["neighbours"]  # built: in the page at once
        assert later["id"] not in [n["id"] for n in answer["neighbours"]]
    with Catalog.open(db_url) as fresh:  # a server of its own: its index is not built
        with TestClient(create_app(fresh, access=access, hosts=HOSTS)) as client:
            first = client.get("/api/image/digits/test/4?k=5").json()
        assert first["neighbours"] is None
        assert first["neighbours_url"] == "/api/neighbours/digits/test/4?k=5"
