"""Browsing pages: overview, grid (with its sprite sheet), image, thumbnails, exports."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from catalog.api.handle import Catalog
from catalog.errors import ImageNotFoundError
from catalog.select.records import ImageRow
from catalog.selection import Selection
from catalog.web import gridview
from catalog.web.gridview import sprite_of_ids
from catalog.web.params import (
    PAGE_SIZE,
    check_names,
    paged,
    parse_int,
    parse_page,
    parse_selection,
    query_string,
)
from catalog.web.pngs import png_bytes, sprite_bytes
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
    _warm_maps(
        request, [str(d["name"]) for d in datasets if int(str(d["total"])) > WARM_MAPS_ABOVE]
    )
    latest = catalog.latest_audit(findings=False)
    audit = None
    if latest is not None:
        audit = {"run": latest.id, "generated_at": latest.report.generated_at,
                 "datasets": latest.report.datasets, "counts": latest.counts}  # fmt: skip
    return render(request, "overview.html", {"datasets": datasets, "audit": audit})


#: Datasets larger than this have their map drawn in the background when the overview
#: is first shown (reading a million ids takes seconds; the map page then answers at once).
WARM_MAPS_ABOVE = 200_000


def _warm_maps(request: Request, names: list[str]) -> None:
    if names and not getattr(request.app.state, "maps_warming", False):
        request.app.state.maps_warming = True
        catalog_of(request).warm_maps(names)


#: The count table's column of images published without a label.
UNLABELED = "unlabeled"


def _key(label: int | None) -> str:
    return UNLABELED if label is None else str(label)


#: The grid (with its badges, facets and sorts) lives in :mod:`catalog.web.gridview`.
grid = gridview.grid


def sprite(request: Request) -> Response:
    """One PNG holding a grid page's digits, :data:`SPRITE_COLUMNS` to a row."""
    headers = {"Cache-Control": "no-cache"}
    if "ids" in request.query_params:  # a grid of chosen images (a map's box, a ranking)
        check_names(request.query_params, ("ids",))
        png = sprite_of_ids(catalog_of(request), request.query_params["ids"])
        return Response(png, media_type="image/png", headers=headers)
    selection = parse_selection(request.query_params, extra=("page", "size"))
    page = parse_page(request.query_params)
    pixels, _ = catalog_of(request).selected(paged(selection, page)).arrays()
    return Response(sprite_bytes(pixels), media_type="image/png", headers=headers)


def thumbnail(request: Request) -> Response:
    """A digit's PNG, addressed by its content digest: the same bytes forever."""
    check_names(request.query_params, ())
    catalog = catalog_of(request)
    pixels = catalog.pixels_by_digest(request.path_params["sha256"])
    return Response(png_bytes(pixels), media_type="image/png", headers={"Cache-Control": IMMUTABLE})


def image_place(request: Request) -> tuple[str, str, int, int]:
    """An image's ``(dataset, split, index)`` from its path and ``?k=`` neighbours:
    the image page's and the neighbours endpoint's one reading of them."""
    check_names(request.query_params, ("k",))
    dataset, split = request.path_params["dataset"], request.path_params["split"]
    text = request.path_params["index"]
    if not text.isdigit() or int(text) > MAX_INDEX:
        msg = f"No image {split[:32]}:{text[:20]}: the index is a whole number 0 or more"
        raise ImageNotFoundError(msg)
    return dataset, split, int(text), parse_int(request.query_params, "k", 12, 1, MAX_NEIGHBOURS)


def neighbours_url(row: ImageRow, k: int) -> str:
    return f"/api/neighbours/{row.dataset}/{row.split}/{row.index}?k={k}"


def neighbours_of(catalog: Catalog, row: ImageRow, k: int) -> list[dict[str, Any]] | None:
    """The ``k`` look-alikes of ``row`` as the pages list them, None while the index
    builds (they follow: catalog/web/neighbours.py)."""
    found = catalog.lookalikes_if_ready(row.id, row.dataset, k)
    if found is None:
        return None
    return [{**image_json(n.row), "distance": n.distance} for n in found]


def image(request: Request) -> Response:
    dataset, split, index, k = image_place(request)
    catalog = catalog_of(request)
    details = catalog.image_details(split, index, dataset=dataset)
    data = {
        **details.to_json(),
        "thumb": f"/thumb/{details.row.sha256}.png",
        "history": history_of(catalog, details.row),
        "neighbours": neighbours_of(catalog, details.row, k),
        "neighbours_url": neighbours_url(details.row, k),
        **around(catalog, details.row),
    }
    return render(request, "image.html", data)


def around(catalog: Catalog, row: ImageRow) -> dict[str, str | None]:
    """The image page's previous and next image (by index in its split, excluded
    images included) and the grid page of its split that shows it."""
    here = f"/image/{row.dataset}/{row.split}/"

    def exists(index: int) -> bool:
        if index < 0:
            return False
        probe = Selection(
            dataset=row.dataset, splits=(row.split,), index_range=(index, index + 1),
            excluded="include",
        )  # fmt: skip
        return catalog.selected(probe).count() > 0

    whole = Selection(dataset=row.dataset, splits=(row.split,), index_range=(0, row.index))
    before = catalog.selected(whole).count()  # images the split's grid shows before this one
    return {
        "prev": f"{here}{row.index - 1}" if exists(row.index - 1) else None,
        "next": f"{here}{row.index + 1}" if exists(row.index + 1) else None,
        "grid": f"/grid?{query_string(Selection(dataset=row.dataset, splits=(row.split,)), page=before // PAGE_SIZE + 1)}",
    }


def history_of(catalog: Catalog, row: ImageRow) -> list[dict[str, Any]]:
    """The decisions about one image, oldest first."""
    records = catalog.history(f"{row.split}:{row.index}", dataset=row.dataset)
    return [record.to_json() for record in records]


def exports(request: Request) -> Response:
    check_names(request.query_params, ())
    return render(request, "exports.html", {"exports": catalog_of(request).exports()})
