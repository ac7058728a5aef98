"""A page or its JSON twin: every handler answers through :func:`render`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from catalog.web.security import Access


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def render(
    request: Request, template: str, data: dict[str, Any], *, status: int = 200, **extra: Any
) -> Response:
    """The page ``template`` showing ``data``, or ``data`` as JSON for an ``/api/`` URL."""
    if is_api(request):
        return JSONResponse(data, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    access: Access = request.app.state.access
    context = {
        "data": data, "access": access, "can_write": access.can_write(request),
        "query": request.url.query, **extra,
    }  # fmt: skip
    return templates.TemplateResponse(request, template, context, status_code=status)


def error_response(
    request: Request, status: int, message: str, extra: dict[str, Any] | None = None
) -> Response:
    if is_api(request) or request.url.path.endswith(".png"):
        data = {"error": message, "status": status, **(extra or {})}
        return JSONResponse(data, status_code=status)
    return render(request, "error.html", {"error": message, "status": status}, status=status)
