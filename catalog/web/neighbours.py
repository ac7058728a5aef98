"""Look-alikes that follow the page: ``/api/neighbours/{dataset}/{split}/{index}``.

The first image page after ``serve`` starts must not wait for the neighbour index
(about 20 s for a million images without stored embeddings): the page answers at
once with ``"neighbours": null`` and this URL, and the page's script asks it until
the index, built in a background thread, is ready.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from catalog.api.handle import Catalog
from catalog.errors import ImageNotFoundError
from catalog.select.records import ImageRow
from catalog.web.pages import MAX_INDEX, MAX_NEIGHBOURS, catalog_of, image_json
from catalog.web.params import check_names, parse_int


def neighbours_url(row: ImageRow, k: int) -> str:
    return f"/api/neighbours/{row.dataset}/{row.split}/{row.index}?k={k}"


def neighbours_of(catalog: Catalog, row: ImageRow, k: int) -> list[dict[str, Any]] | None:
    """The ``k`` look-alikes of ``row`` as the pages list them, None while the index builds."""
    found = catalog.lookalikes_if_ready(row.id, row.dataset, k)
    if found is None:
        return None
    return [{**image_json(n.row), "distance": n.distance} for n in found]


def neighbours(request: Request) -> Response:
    """``{"ready": bool, "neighbours": [...] or null, "url": ...}`` for one image."""
    check_names(request.query_params, ("k",))
    dataset, split = request.path_params["dataset"], request.path_params["split"]
    text = request.path_params["index"]
    if not text.isdigit() or int(text) > MAX_INDEX:
        msg = f"No image {split[:32]}:{text[:20]}: the index is a whole number 0 or more"
        raise ImageNotFoundError(msg)
    k = parse_int(request.query_params, "k", 12, 1, MAX_NEIGHBOURS)
    catalog = catalog_of(request)
    row, _ = catalog.image(split, int(text), dataset=dataset)
    found = neighbours_of(catalog, row, k)
    data = {"ready": found is not None, "neighbours": found, "url": neighbours_url(row, k)}
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
