"""Hostile requests against every route: tokens, cookies, headers, query strings and
JSON bodies a client controls. Every answer is a 4xx with a message (or the page),
never a 5xx; a 1 MB request line gets 414 from a real server, not a reset.

The TestClient re-raises any exception a handler lets out, so an unguarded parse or
comparison fails the test with its traceback, not only with a status.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient
from web_fixtures import audit_sources, build_web_catalog, write_sources

from catalog import Catalog
from catalog.audit import AuditReport
from catalog.web.app import create_app
from catalog.web.security import Access

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


def sha_of(client: TestClient) -> str:
    sha: str = client.get("/api/image/digits/test/4").json()["sha256"]
    return sha


#: Values for the path parameters of the app's routes.
PATH_VALUES = {"dataset": "digits", "split": "test", "index": "4"}


def _routes(client: TestClient, method: str) -> list[str]:
    """One URL of every route of the app answering ``method``, read from the app itself
    (so a route added later is swept too): path parameters filled in, static files by
    one of theirs."""
    from starlette.routing import Mount, Route

    values = {**PATH_VALUES, "sha256": sha_of(client)}
    urls = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount) and method == "GET":
            urls.append(f"{route.path}/catalog.js")
        elif isinstance(route, Route) and method in (route.methods or ()):
            urls.append(route.path.format(**{k: values[k] for k in route.param_convertors}))
    return urls


def routes(client: TestClient) -> list[str]:
    """One URL of every GET route (pages first), with a query the grid needs."""
    urls = _routes(client, "GET")
    assert {"/", "/grid", "/image/digits/test/4", "/api/decide"} - set(urls) == {"/api/decide"}
    return [url + ("?split=test" if url.endswith(("/grid", "/sprite.png")) else "") for url in urls]


def post_routes(client: TestClient) -> list[str]:
    urls = _routes(client, "POST")
    assert "/api/decide" in urls
    return urls


#: Tokens a client may send: not ASCII, NUL, huge, empty, almost right.
TOKENS = ["é", "\u00e9" * 3000, "🙂", "tok\x00en", "\x00", "a" * 20_000, "", " ", "\ufffd"]


def no_5xx(response: object, what: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, (what, status, response.text[:300])  # type: ignore[attr-defined]


def test_hostile_tokens_in_the_url_never_500_and_never_refuse_reading(
    client: TestClient, access: Access
) -> None:
    for token in TOKENS:
        for url in ("/", "/grid?split=test", "/api/overview"):
            joined = "&" if "?" in url else "?"
            response = client.get(url + joined + "token=" + quote(token), follow_redirects=False)
            no_5xx(response, (url, token[:20]))
            if "\x00" not in token:  # a URL with NUL is refused (400) before the token
                assert response.status_code == 303, (url, token[:20])
                assert "set-cookie" not in response.headers  # a wrong token: no writing
    raw = ["%C3%A9", "%FF", "%FF%FE%00", "%ED%A0%80", "%", "%%%", "x" * 10_000]
    for token in raw:
        no_5xx(client.get(f"/?token={token}", follow_redirects=False), token[:20])


def test_hostile_cookies_and_headers_never_500(client: TestClient, access: Access) -> None:
    body = json.dumps({"action": "keep", "split": "test", "index": 4, "by": "eve"}).encode()
    values = [t.encode("utf-8", "surrogatepass") for t in TOKENS] + [b"\xff\xfe", b"\xc3"]
    urls = routes(client)
    for value in values:
        cookies = [
            b"catalog_token=" + value, b"catalog_token_8000=" + value,
            b"catalog_reviewer=" + value, b"catalog_reviewer=%FF%FE%00" + value,
            b"=" + value, value, b"catalog_token=" + value + b"; catalog_token=" + value,
        ]  # fmt: skip
        headers = [
            {b"authorization": b"Bearer " + value}, {b"authorization": b"bearer" + value},
            {b"authorization": value}, {b"x-csrf-token": value},
            {b"origin": value}, {b"referer": value}, {b"accept": value},
            {b"content-type": b"application/json; charset=" + value},
            {b"authorization": b"Bearer " + value + access.token.encode()},
            {b"authorization": b"Bearer " + access.token.encode() + value},
        ]  # fmt: skip
        for cookie in cookies:
            for url in urls[:3]:
                no_5xx(client.get(url, headers={b"cookie": cookie}), (url, cookie[:40]))
            response = client.post(
                "/api/decide", content=body, headers={b"cookie": cookie, b"x-csrf-token": value}
            )
            assert response.status_code in (400, 403), (cookie[:40], response.text[:200])
        for extra in headers:
            for url in urls:
                no_5xx(client.get(url, headers=extra), (url, extra))
            response = client.post("/api/decide", content=body, headers=extra)
            no_5xx(response, extra)
            if value.strip():  # only the exact token writes (blanks around it are trimmed)
                assert response.status_code in (400, 403), (extra, response.text[:200])
    hosts = ["testserver:abc", "testserver:99999999999", "testserver:", "testserver:-1"]
    for host in hosts:  # the Host check passes these (the name is right): the port is not
        for url in urls[:3]:
            no_5xx(client.get(url, headers={"host": host}), (url, host))


QUERIES = [
    "?%FF=1", "?a=%FF%FE", "?split=%ED%A0%80", "?dataset=%C0%AF", "?label=%00", "?&&&=&",
    "?page=1e9", "?page=100000", "?size=-0", "?k=%FF", "?n=99999999999999999999999999",
    "?limit=" + "9" * 5000, "?split=" + "x" * 20_000, "?" + "a=1&" * 2000, "?label=3&label=",
    "?dataset=nope", "?split=test&split=%00", "?tag=" + "é" * 500, "?where=a%3D%FF",
]  # fmt: skip


def test_hostile_query_strings_on_every_route_never_500(client: TestClient) -> None:
    for url in routes(client):
        base = url.split("?")[0]
        for query in QUERIES:
            response = client.get(base + query)
            no_5xx(response, base + query[:40])
            if response.status_code >= 400 and base.startswith("/api/"):
                assert response.json()["error"]


def writer_headers(client: TestClient, access: Access) -> dict[str, str]:
    assert client.get(f"/?token={access.token}", follow_redirects=False).status_code == 303
    return {"X-CSRF-Token": access.csrf, "Content-Type": "application/json"}


GOOD = {"action": "keep", "split": "test", "index": 4, "by": "eve"}
BODIES: list[bytes] = [
    b"[" * 2000, b"[" * 2000 + b"]" * 2000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "x": ' + b"[" * 40
    + b"]" * 40 + b"}",
    b"\xff\xfe{}", b"\xc3\x28", '{"action": "keep"}'.encode("utf-16"), b"\x00" * 100,
    b'{"action": "keep", "split": "test", "index": ' + b"1" * 4000 + b', "by": "eve"}',
    b'{"action": "relabel", "split": "test", "index": 4, "label": 1e999999, "by": "eve"}',
    b'{"action": "relabel", "split": "test", "index": 4, "label": NaN, "by": "eve"}',
    b'{"action": "keep", "split": "test", "index": 4.5, "by": "eve"}',
    b'{"action": "keep", "split": "\\ud800", "index": 4, "by": "eve"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "\\ud800"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "dataset": "\\udcff"}',
    b'{"action": "relabel", "split": "test", "index": 4, "by": "eve", "label": "\\ud800"}',
    b'{"action": ["keep"], "split": "test", "index": 4, "by": "eve"}',
    b'{"action": {"a": 1}, "split": "test", "index": 4, "by": "eve"}',
    b'{"action": "keep", "split": 4, "index": "test", "by": "eve"}',
    b'{"action": "keep", "split": "test", "index": true, "by": "eve"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": ["eve"]}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": "x"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": -1}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": true}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": 1e30}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": '
    + b"9" * 30 + b"}",
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "seen": [1]}',
    b'{"action": "keep", "split": "test", "index": -4, "by": "eve"}',
    b'{"action": "relabel", "split": "test", "index": 4, "by": "eve", "label": -99999999999}',
    b'{"action": "relabel", "split": "test", "index": 4, "by": "eve", "label": '
    + b"7" * 39 + b"}",
    b'{"action": "undo", "split": "test", "index": 4, "by": "eve"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "' + b"e" * 65 + b'"}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve", "by": 5}',
    b'{"action": "keep", "split": "test", "index": 4, "by": "eve"' + b" " * 5000 + b"}",
    b"", b"null", b"true", b"1", b'"keep"', b"{", b"}", b'{"a"}', b"[]",
]  # fmt: skip


def test_hostile_decision_bodies_never_500_and_record_nothing(
    client: TestClient, access: Access, web_catalog: Catalog
) -> None:
    headers = writer_headers(client, access)
    for url in post_routes(client):  # /api/decide and any other write
        for body in BODIES:
            response = client.post(url, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (url, body[:60], response.status_code)
            assert response.json()["error"], (url, body[:60])
    assert web_catalog.decisions() == []
    deep = client.post("/api/decide", content=b"[" * 2000, headers=headers)
    assert deep.json()["error"] == "The request body is nested over 32 levels deep"
    big = client.post("/api/decide", content=b" " * 5000, headers=headers)
    assert big.status_code == 413
    good = client.post("/api/decide", content=json.dumps(GOOD), headers=headers)
    assert good.status_code == 200, good.text  # the same client still writes


def test_an_endless_chunked_body_is_cut_off_after_4_kb() -> None:
    import asyncio

    from starlette.requests import Request

    from catalog.web.bodies import MAX_BODY, BodyTooLargeError, read_body

    chunks = []

    async def receive() -> dict[str, object]:  # no Content-Length, never ends
        chunks.append(1024)
        return {"type": "http.request", "body": b" " * 1024, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(BodyTooLargeError, match="Request body over 4096 bytes"):
        asyncio.run(read_body(request))
    assert sum(chunks) == MAX_BODY + 1024  # read no further than the first chunk over
    declared = Request(
        {"type": "http", "method": "POST", "headers": [(b"content-length", b"999999999")]},
        receive,
    )
    chunks.clear()
    with pytest.raises(BodyTooLargeError):
        asyncio.run(read_body(declared))
    assert chunks == []  # refused by its Content-Length, nothing read


def test_a_real_server_answers_a_1_mb_request_line_414_and_headers_431() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from catalog.web.server import ThreadedServer

    app = Starlette(routes=[Route("/", lambda _: PlainTextResponse("ok"))])

    def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    with ThreadedServer(app) as server:
        status, text = get(server.port, "/?q=" + "a" * 1_000_000)
        assert status == 414
        assert text == "The request line (the URL) is over 65536 bytes: refused\n"
        status, text = get(server.port, "/", {"X-Big": "b" * 1_000_000})
        assert (status, text) == (431, "The request headers are over 65536 bytes: refused\n")
        assert get(server.port, "/?q=" + "a" * 8000) == (200, "ok")  # still serving


def test_the_web_app_behind_a_real_server_answers_a_huge_url_414(web_catalog: Catalog) -> None:
    from catalog.web.server import ThreadedServer

    with ThreadedServer(create_app(web_catalog)) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        connection.request("GET", "/grid?token=" + "%C3%A9" * 200_000)
        response = connection.getresponse()
        assert response.status == 414
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        connection.request("GET", "/?token=%C3%A9", headers={"Cookie": "catalog_token=\u00e9"})
        response = connection.getresponse()
        assert response.status == 303  # reading is open: the wrong token is only dropped
        connection.close()
