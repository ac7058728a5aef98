"""Look-alikes that follow the page: ``/api/neighbours/{dataset}/{split}/{index}``.

The first image page after ``serve`` starts must not wait for the neighbour index
(about 20 s for a million images without stored embeddings): the page answers at
once with ``"neighbours": null`` and this URL, and the page's script asks it until
the index, built in a background thread, is ready.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from catalog.web.pages import catalog_of, image_place, neighbours_of, neighbours_url


def neighbours(request: Request) -> Response:
    """``{"ready": bool, "neighbours": [...] or null, "url": ...}`` for one image."""
    dataset, split, index, k = image_place(request)
    catalog = catalog_of(request)
    row, _ = catalog.image(split, index, dataset=dataset)
    found = neighbours_of(catalog, row, k)
    data = {"ready": found is not None, "neighbours": found, "url": neighbours_url(row, k)}
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
