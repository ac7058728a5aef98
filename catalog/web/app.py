"""The web view: thin Starlette routes over the library, one JSON twin per page.

Every page ``/x`` has its twin ``/api/x`` with the same parameters, answering the
data the page shows as JSON (Datasette's model: the URL is the query). Handlers
parse the URL (:mod:`catalog.web.params`), call the library and render; none of
them knows SQL. Errors a user can fix answer 400 (404 for an unknown image or
dataset) with the message, as the command line prints it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from catalog.api.handle import Catalog
from catalog.errors import (
    CatalogError,
    DatasetNotFoundError,
    ImageNotFoundError,
    StaleDecisionError,
)
from catalog.web import pages, review
from catalog.web.bodies import BodyTooLargeError
from catalog.web.decide_set import decide_set
from catalog.web.mapview import map_page
from catalog.web.neighbours import neighbours
from catalog.web.params import query_string
from catalog.web.render import error_response
from catalog.web.security import Access, WriteRefused
from catalog.web.server import LOCAL_HOSTS

HERE = Path(__file__).resolve().parent
#: Security headers on every response: no framing, no sniffing, no outside scripts.
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}

Handler = Callable[[Request], Awaitable[Response] | Response]


async def on_catalog_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StaleDecisionError):  # someone decided since: who, what, when
        return error_response(request, 409, str(exc), {"latest": exc.latest})
    status = 404 if isinstance(exc, ImageNotFoundError | DatasetNotFoundError) else 400
    status = 413 if isinstance(exc, BodyTooLargeError) else status
    return error_response(request, status, str(exc))


async def on_write_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WriteRefused)
    return error_response(request, exc.status, str(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"No page at {request.url.path}"
    return error_response(request, exc.status_code, message)


async def favicon(request: Request) -> Response:
    """The tab's icon (browsers ask for ``/favicon.ico`` whatever the page says)."""
    data = (HERE / "static" / "favicon.ico").read_bytes()
    return Response(data, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})


def twin(path: str, endpoint: Handler, name: str) -> list[BaseRoute]:
    """The page route and its ``/api`` JSON twin."""
    api = "/api/overview" if path == "/" else f"/api{path}"
    return [Route(path, endpoint, name=name), Route(api, endpoint, name=f"api-{name}")]


class Headers(BaseHTTPMiddleware):
    """Security headers on every response, and ``?token=`` turned into a cookie."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        access: Access = request.app.state.access
        try:
            if not _printable(request):
                raise WriteRefused(400, "The URL holds control characters: refused")
            redirect = access.token_redirect(request)
        except WriteRefused as exc:
            redirect = error_response(request, exc.status, str(exc))
        response = redirect or await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def _printable(request: Request) -> bool:
    """No control characters in the path or the parameters (PostgreSQL refuses NUL)."""
    texts = [request.url.path, *(t for pair in request.query_params.multi_items() for t in pair)]
    return all(text.isprintable() for text in texts)


def create_app(
    catalog: Catalog,
    *,
    access: Access | None = None,
    hosts: Sequence[str] = LOCAL_HOSTS,
) -> Starlette:
    """The web view of ``catalog``.

    Parameters
    ----------
    catalog
        An open catalog; requests read (and, with the token, write) through it.
    access
        The write token, CSRF token and read-only switch (default: fresh tokens, writable).
    hosts
        Host names the server answers to (``["*"]`` for any).
    """
    routes: list[BaseRoute] = [
        *twin("/", pages.overview, "overview"),
        *twin("/grid", pages.grid, "grid"),
        Route("/sprite.png", pages.sprite, name="sprite"),
        Route("/thumb/{sha256}.png", pages.thumbnail, name="thumb"),
        *twin("/image/{dataset}/{split}/{index}", pages.image, "image"),
        Route("/api/neighbours/{dataset}/{split}/{index}", neighbours, name="neighbours"),
        *twin("/exports", pages.exports, "exports"),
        *twin("/audit", review.audit_page, "audit"),
        *twin("/review", review.review_page, "review"),
        Route("/api/decide", review.decide, methods=["POST"], name="decide"),
        Route("/favicon.ico", favicon, name="favicon"),
        *twin("/map", map_page, "map"),
        Route("/api/decide-set", decide_set, methods=["POST"], name="decide-set"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
            Middleware(Headers),
        ],
        exception_handlers={
            CatalogError: on_catalog_error,
            WriteRefused: on_write_refused,
            HTTPException: on_http_error,
        },
    )
    app.state.catalog = catalog
    app.state.access = access or Access()
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["query_string"] = query_string
    app.state.templates = templates
    return app
