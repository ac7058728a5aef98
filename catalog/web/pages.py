"""Browsing pages: overview, grid (with its sprite sheet), image, thumbnails, exports."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog.api.handle import Catalog
from catalog.errors import ImageNotFoundError
from catalog.select.records import ImageRow
from catalog.web.params import (
    ParameterError,
    check_names,
    paged,
    parse_int,
    parse_page,
    parse_selection,
    query_string,
)
from catalog.web.pngs import SPRITE_COLUMNS, png_bytes, sprite_bytes
from catalog.web.render import render

#: Thumbnails never change for a digest: cache them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Largest image index a URL may name (larger cannot be stored).
MAX_INDEX = 2**31 - 1
MAX_NEIGHBOURS = 50


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def image_json(row: ImageRow) -> dict[str, Any]:
    """One image as the JSON API lists it, with the URLs of its page and thumbnail."""
    return {
        "id": row.id, "dataset": row.dataset, "split": row.split, "index": row.index,
        "label": row.label, "sha256": row.sha256, "decision": row.decision,  # for "seen"
        "url": f"/image/{row.dataset}/{row.split}/{row.index}",
        "thumb": f"/thumb/{row.sha256}.png",
    }  # fmt: skip


def overview(request: Request) -> Response:
    check_names(request.query_params, ())
    catalog = catalog_of(request)
    datasets = []
    for summary in catalog.datasets(counts=False):  # counted below, by current label
        counts = catalog.select(dataset=summary.name).counts(("split", "label"))
        names = catalog.label_names(summary.name)
        numbers = sorted({label for _, label in counts if label is not None} | set(names))
        labels = [str(n) for n in numbers] + (
            [UNLABELED] if any(label is None for _, label in counts) else []
        )
        table = {
            split: {_key(label): n for (s, label), n in counts.items() if s == split}
            for split in sorted({split for split, _ in counts})
        }
        table = {split: {key: row.get(key, 0) for key in labels} for split, row in table.items()}
        datasets.append({
            "name": summary.name, "created_at": summary.created_at, "genuine": summary.genuine,
            "total": sum(counts.values()), "splits": {s: sum(t.values()) for s, t in table.items()},
            "labels": labels, "label_names": {str(k): v for k, v in names.items()},
            "counts": table, "sources": summary.sources,
        })  # fmt: skip
    latest = catalog.latest_audit(findings=False)
    audit = None
    if latest is not None:
        audit = {"run": latest.id, "generated_at": latest.report.generated_at,
                 "datasets": latest.report.datasets, "counts": latest.counts}  # fmt: skip
    return render(request, "overview.html", {"datasets": datasets, "audit": audit})


#: The count table's column of images published without a label.
UNLABELED = "unlabeled"


def _key(label: int | None) -> str:
    return UNLABELED if label is None else str(label)


def grid(request: Request) -> Response:
    selection = parse_selection(request.query_params, extra=("page", "size"))
    page = parse_page(request.query_params)
    catalog = catalog_of(request)
    total = catalog.selected(selection).count()
    pages = page.pages(total)
    if page.number > pages:  # a page past the end is a wrong URL, not an empty page
        msg = f"No page {page.number}: the selection has {pages} page(s) of {page.size}"
        raise ParameterError(msg)
    rows = catalog.selected(paged(selection, page)).rows()
    data = {
        "selection": selection.to_json(), "total": total, "page": page.number,
        "pages": pages, "size": page.size, "images": [image_json(row) for row in rows],
    }  # fmt: skip
    return render(
        request, "grid.html", data, selection=selection, columns=SPRITE_COLUMNS,
        sprite=f"/sprite.png?{query_string(selection, page=page.number, size=page.size)}",
        prev=_page_url(selection, page.number - 1, page.size) if page.number > 1 else None,
        next=_page_url(selection, page.number + 1, page.size) if page.number < pages else None,
    )  # fmt: skip


def _page_url(selection: Any, number: int, size: int) -> str:
    return f"/grid?{query_string(selection, page=number, size=size)}"


def sprite(request: Request) -> Response:
    """One PNG holding a grid page's digits, :data:`SPRITE_COLUMNS` to a row."""
    selection = parse_selection(request.query_params, extra=("page", "size"))
    page = parse_page(request.query_params)
    pixels, _ = catalog_of(request).selected(paged(selection, page)).arrays()
    headers = {"Cache-Control": "no-cache"}
    return Response(sprite_bytes(pixels), media_type="image/png", headers=headers)


def thumbnail(request: Request) -> Response:
    """A digit's PNG, addressed by its content digest: the same bytes forever."""
    check_names(request.query_params, ())
    catalog = catalog_of(request)
    pixels = catalog.pixels_by_digest(request.path_params["sha256"])
    return Response(png_bytes(pixels), media_type="image/png", headers={"Cache-Control": IMMUTABLE})


def image(request: Request) -> Response:
    check_names(request.query_params, ("k",))
    dataset, split = request.path_params["dataset"], request.path_params["split"]
    text = request.path_params["index"]
    if not text.isdigit() or int(text) > MAX_INDEX:
        msg = f"No image {split}:{text[:20]}: the index is a whole number 0 or more"
        raise ImageNotFoundError(msg)
    k = parse_int(request.query_params, "k", 12, 1, MAX_NEIGHBOURS)
    catalog = catalog_of(request)
    details = catalog.image_details(split, int(text), dataset=dataset)
    found = catalog.lookalikes_if_ready(details.row.id, details.row.dataset, k)
    data = {
        **details.to_json(),
        "thumb": f"/thumb/{details.row.sha256}.png",
        "history": history_of(catalog, details.row),
        "neighbours": None  # the index is being built: they follow (catalog/web/neighbours.py)
        if found is None
        else [{**image_json(n.row), "distance": n.distance} for n in found],
        "neighbours_url": f"/api/neighbours/{dataset}/{split}/{text}?k={k}",
    }
    return render(request, "image.html", data)


def history_of(catalog: Catalog, row: ImageRow) -> list[dict[str, Any]]:
    """The decisions about one image, oldest first."""
    records = catalog.history(f"{row.split}:{row.index}", dataset=row.dataset)
    return [record.to_json() for record in records]


def exports(request: Request) -> Response:
    check_names(request.query_params, ())
    return render(request, "exports.html", {"exports": catalog_of(request).exports()})
