"""Who may write, and how a write is asked for.

- Reading is open to whoever reaches the server (it binds 127.0.0.1 by default,
  and only answers requests addressed to the host it serves: no DNS rebinding).
- Writing needs the token printed at start-up, as Jupyter's does: opened once as
  ``?token=...``, it is kept in an HttpOnly, SameSite=Strict cookie and dropped from
  the URL. Scripts send it as ``Authorization: Bearer <token>`` instead.
- A write is a POST. From a page it also carries the CSRF token the page holds
  (header ``X-CSRF-Token``), and a cross-site ``Origin`` is refused. A GET never writes.
- ``--read-only`` turns writing off whatever the token.
- The token cookie is named after the port (``catalog_token_8000``): cookies are
  shared by every port of a host, so two servers on one machine each keep their own.
- Every token the client sends is compared as bytes (:func:`same_secret`): text
  that is not ASCII, or holds NUL, simply does not match (no error, no 500).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

TOKEN_COOKIE = "catalog_token"
REVIEWER_COOKIE = "catalog_reviewer"
CSRF_HEADER = "x-csrf-token"


class WriteRefused(Exception):
    """A state-changing request without the right to write; carries the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Access:
    """The server's write token and CSRF token (both random per start), and read-only."""

    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def has_token(self, request: Request) -> bool:
        given = request.cookies.get(token_cookie(request), "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return same_secret(given, self.token)

    def can_write(self, request: Request) -> bool:
        return not self.read_only and self.has_token(request)

    def check_write(self, request: Request) -> None:
        """Raise :class:`WriteRefused` unless ``request`` may change the catalog."""
        if request.method != "POST":
            raise WriteRefused(405, "Changes are made with POST")
        if self.read_only:
            raise WriteRefused(403, "The server is read-only (started with --read-only)")
        if not self.has_token(request):
            raise WriteRefused(
                403, "Writing needs the token printed at start-up: open the URL with ?token=..."
            )
        by_header = request.headers.get("authorization", "").lower().startswith("bearer ")
        if by_header:
            return  # a script: a browser cannot send this header cross-site without CORS
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(request):
            raise WriteRefused(403, f"Cross-site request from {origin} refused")
        given = request.headers.get(CSRF_HEADER, "")
        if not same_secret(given, self.csrf):
            raise WriteRefused(403, "Missing or wrong CSRF token: reload the page")

    def token_redirect(self, request: Request) -> Response | None:
        """For ``?token=...``: keep it in a cookie and redirect to the URL without it.

        A wrong token is dropped from the URL too, without a cookie: reading is open
        to everyone, the page then simply cannot write (and says so).
        """
        given = request.query_params.get("token")
        if given is None or request.method != "GET":
            return None
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        url = request.url.replace(query=urlencode(rest))
        response = RedirectResponse(str(url), status_code=303)
        if same_secret(given, self.token) and not self.read_only:
            response.set_cookie(token_cookie(request), self.token, httponly=True, samesite="strict")
        return response


def same_secret(given: str, secret: str) -> bool:
    """Whether ``given`` (client text) is ``secret``, in constant time.

    ``hmac.compare_digest`` raises TypeError on text that is not ASCII: compare the
    UTF-8 bytes instead (``surrogatepass``: a lone surrogate is not an error either).
    """
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode())


def token_cookie(request: Request) -> str:
    """The token cookie's name for the port this request was sent to (``catalog_token_8000``)."""
    try:
        port = request.url.port
    except ValueError:  # "Host: 127.0.0.1:abc" passes the host check; not a port
        port = None
    return f"{TOKEN_COOKIE}_{port}" if port else TOKEN_COOKIE


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def reviewer(request: Request, given: object = None) -> str | None:
    """The reviewer's name: from the request body if given, else the cookie the page set."""
    from urllib.parse import unquote

    name = given if isinstance(given, str) else unquote(request.cookies.get(REVIEWER_COOKIE, ""))
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        return None
    return name
