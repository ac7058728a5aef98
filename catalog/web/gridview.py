"""The grid: a page of a selection's digits with their decision badges, the facets
beside it, and its sorts (index, seeded random, suspect score) or an explicit list
of images (``?ids=...``, what the map's box opens).

Each image of the JSON twin carries its state (current and source label, excluded,
tags, latest decision) and, if the latest stored audit run suspects it, the score.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from catalog.api.handle import Catalog
from catalog.select.facets import Facets
from catalog.select.records import ImageRow
from catalog.selection import Selection
from catalog.web.params import (
    MAX_PAGE_SIZE,
    Page,
    ParameterError,
    paged,
    parse_page,
    parse_selection,
    query_string,
)
from catalog.web.pngs import SPRITE_COLUMNS, sprite_bytes
from catalog.web.render import render
from catalog.web.suspects import Suspects, suspects_of

SORTS = ("index", "random", "suspect")
#: The largest catalog id (a 32-bit column on PostgreSQL).
MAX_ID = 2**31 - 1
#: The grid's own parameters besides the selection's.
GRID_PARAMS = ("page", "size", "sort", "ids")


def parse_sort(params: Any) -> str:
    sort = params.get("sort") or "index"
    if sort not in SORTS:
        msg = f"Parameter sort={sort[:40]!r}: expected one of {', '.join(SORTS)}"
        raise ParameterError(msg)
    return sort


def parse_ids(params: Any) -> list[int] | None:
    """``ids=3,17,42``: catalog ids of images to show, at most :data:`MAX_PAGE_SIZE`."""
    if "ids" not in params:
        return None
    texts = [t for t in params["ids"].split(",") if t.strip()]
    if len(texts) > MAX_PAGE_SIZE:
        msg = f"Parameter ids names {len(texts):,} images: at most {MAX_PAGE_SIZE:,}"
        raise ParameterError(msg)
    if not all(t.strip().isdigit() and len(t.strip()) <= 18 for t in texts):
        msg = "Parameter ids is a comma-separated list of catalog ids (whole numbers)"
        raise ParameterError(msg)
    # Ids past the largest a catalog gives are no image: left out, not sent to SQL.
    return list(dict.fromkeys(int(t) for t in texts if int(t) <= MAX_ID))


def image_state(row: ImageRow, suspects: Suspects) -> dict[str, Any]:
    """One image as the grid's JSON lists it: where, label, state, and suspicion."""
    suspect = suspects.by_image.get((row.dataset, row.split, row.index))
    return {
        "id": row.id, "dataset": row.dataset, "split": row.split, "index": row.index,
        "label": row.label, "original_label": row.original_label,
        "relabelled": row.label != row.original_label, "excluded": row.excluded,
        "tags": list(row.tags), "decision": row.decision, "sha256": row.sha256,
        "url": f"/image/{row.dataset}/{row.split}/{row.index}",
        "thumb": f"/thumb/{row.sha256}.png",
        "suspect": None if suspect is None else {
            "score": suspect.score, "suggested": suspect.suggested},
    }  # fmt: skip


def _ranked_ids(catalog: Catalog, selection: Selection, suspects: Suspects) -> list[int]:
    """The selection's suspects, highest score first, as catalog ids."""
    if not suspects.by_image:
        return []
    datasets = {key[0] for key in suspects.by_image}
    dataset = selection.dataset or (min(datasets) if len(datasets) == 1 else None)
    refs = suspects.ranked(dataset) if dataset else []
    if not refs:
        return []
    ids = catalog.image_ids(refs, dataset=dataset)
    return catalog.keep_selected(replace(selection, limit=None, offset=0), ids)


def grid_rows(
    catalog: Catalog, selection: Selection, page: Page, sort: str, ids: list[int] | None,
    suspects: Suspects,
) -> tuple[int, list[ImageRow], list[int] | None]:  # fmt: skip
    """How many images the grid pages through, this page's rows, and their ids when
    the page is not a slice of the selection (a list of ids, or ranked by suspicion)."""
    if ids is not None:
        return len(ids), catalog.rows_of(ids), ids
    if sort == "suspect":
        ranked = _ranked_ids(catalog, selection, suspects)
        shown = ranked[page.offset : page.offset + page.size]
        return len(ranked), catalog.rows_of(shown), shown
    samplers = (selection.sample, selection.per_label, selection.per_group, selection.holdout_part)
    if sort == "random" and all(value is None for value in samplers):
        # The selection's ids are read once (and kept); each page is a slice of the
        # seeded permutation select_ids draws for order=random: the same images.
        ordered = catalog.selection_ids(
            replace(selection, order="index", limit=None, offset=0, seed=0)
        )
        rng = np.random.Generator(np.random.PCG64(selection.seed))
        mixed = ordered[rng.permutation(len(ordered))]
        stop = None if selection.limit is None else selection.offset + selection.limit
        mixed = mixed[selection.offset : stop]
        shown = mixed[page.offset : page.offset + page.size].tolist()
        return len(mixed), catalog.rows_of(shown), shown
    # The order never changes which images a selection holds: count them in index order.
    total = catalog.selected(replace(selection, order="index")).count()
    return total, catalog.selected(paged(selection, page)).rows(), None


def facets_json(facets: Facets, names: dict[int, str]) -> dict[str, Any]:
    label = {("unlabeled" if k is None else str(k)): n for k, n in facets.label.items()}
    return {
        "split": facets.split, "label": label, "tag": facets.tag, "state": facets.state,
        "metadata": facets.metadata, "more_values": facets.more_values,
        "label_names": {str(k): v for k, v in names.items()},
    }  # fmt: skip


def grid(request: Request) -> Response:
    params = request.query_params
    selection = parse_selection(params, extra=GRID_PARAMS)
    page, sort, ids = parse_page(params), parse_sort(params), parse_ids(params)
    if sort == "random":
        selection = replace(selection, order="random")
    catalog: Catalog = request.app.state.catalog
    suspects = suspects_of(catalog)
    total, rows, shown = grid_rows(catalog, selection, page, sort, ids, suspects)
    pages = page.pages(total)
    if page.number > pages and total:
        msg = f"Parameter page={page.number} is past the last page, {pages}"
        raise ParameterError(msg)
    facets = catalog.facets(replace(selection, order="index")) if ids is None else None
    names = catalog.label_names(rows[0].dataset) if rows else {}
    data = {
        "selection": selection.to_json(), "sort": sort, "total": total, "page": page.number,
        "pages": pages, "size": page.size, "audit_run": suspects.run,
        "images": [image_state(row, suspects) for row in rows],
        "facets": facets_json(facets, names) if facets else None,
    }  # fmt: skip
    keep = {
        "sort": sort if sort != "index" else None,
        "size": page.size if page.size != 500 else None,
    }
    if shown is not None:
        sprite = f"/sprite.png?ids={','.join(str(row.id) for row in rows)}"
    else:
        sprite = f"/sprite.png?{query_string(selection, page=page.number, size=page.size)}"

    def page_url(number: int) -> str:
        return f"/grid?{query_string(selection, page=number, **keep)}"

    def narrowed(**extra: Any) -> str:
        return f"/grid?{narrow(selection, **extra)}{'&sort=' + sort if sort != 'index' else ''}"

    return render(
        request, "grid.html", data, selection=selection, columns=SPRITE_COLUMNS, sprite=sprite,
        prev=page_url(page.number - 1) if page.number > 1 and ids is None else None,
        next=page_url(page.number + 1) if page.number < pages and ids is None else None,
        narrowed=narrowed, sort_url=lambda s: f"/grid?{query_string(replace(selection, order='index'), sort=s if s != 'index' else None)}",
        back=f"/grid?{query_string(selection)}",
    )  # fmt: skip


def narrow(selection: Selection, **extra: Any) -> str:
    """The query of ``selection`` narrowed by one facet value (split, label, tag,
    relabelled, excluded or a metadata ``where``)."""
    if "split" in extra:
        selection = replace(selection, splits=(extra["split"],))
    if "label" in extra:
        if extra["label"] == "unlabeled":
            selection = replace(selection, labels=(), unlabeled=True)
        else:
            selection = replace(selection, labels=(int(extra["label"]),))
    if "tag" in extra:
        selection = replace(selection, tags=tuple(dict.fromkeys((*selection.tags, extra["tag"]))))
    if extra.get("state") == "relabelled":
        selection = replace(selection, relabelled=True)
    if extra.get("state") == "excluded" and selection.version is None:
        selection = replace(selection, excluded="only")  # a version holds its images
    if "where" in extra:
        key, value = extra["where"]
        kept = tuple(pair for pair in selection.where if pair[0] != key)
        selection = replace(selection, where=(*kept, (key, value)))
    return query_string(selection)


def sprite_of_ids(catalog: Catalog, text: str) -> bytes:
    """The sprite sheet of images ``ids`` (as :func:`parse_ids` reads them), in that order."""
    ids = parse_ids({"ids": text}) or []
    rows = catalog.rows_of(ids)
    pixels = (
        catalog.pixels_of([row.id for row in rows]) if rows else np.zeros((0, 28, 28), np.uint8)
    )
    return sprite_bytes(pixels)
