"""The map: a selection's images laid out in 2-D (t-SNE of their pooled pixels, Fisher's
discriminant until the t-SNE layout is ready: :mod:`catalog.similarity.projection`), drawn by
``static/map.js`` on a canvas, coloured by label or by suspect score; a box drawn on it
opens the images inside in the grid (``/grid?ids=...``).

The page and its twin ``/api/map`` carry the same data; the page holds it in a JSON
block that the script reads (no second request, nothing executed from it).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from catalog.api.handle import Catalog
from catalog.similarity.projection import MAP_POINTS, METHODS
from catalog.web.params import ParameterError, parse_int, parse_selection, query_string
from catalog.web.render import is_api, render
from catalog.web.suspects import suspects_of

COLOURS = ("label", "score")


def map_page(request: Request) -> Response:
    params = request.query_params
    selection = parse_selection(params, extra=("points", "color"))
    cap = parse_int(params, "points", MAP_POINTS, 1, MAP_POINTS)
    colour = params.get("color") or "label"
    if colour not in COLOURS:
        msg = f"Parameter color={colour[:40]!r}: expected label or score"
        raise ParameterError(msg)
    catalog: Catalog = request.app.state.catalog
    found = catalog.map_points(selection, cap=cap, seed=selection.seed)
    scores = _scores(catalog, found.ids)
    names = catalog.label_names(selection.dataset) if len(found.ids) else {}
    data: dict[str, Any] = {
        "selection": selection.to_json(), "total": found.total, "drawn": len(found.ids),
        "layout": found.method, "method": METHODS[found.method], "pending": found.pending,
        "label_names": {str(k): v for k, v in names.items()},
        "points": {
            "id": found.ids.tolist(),
            "x": np.round(found.xy[:, 0], 4).tolist() if len(found.ids) else [],
            "y": np.round(found.xy[:, 1], 4).tolist() if len(found.ids) else [],
            "label": found.labels.tolist(),
            "score": scores,
        },
    }  # fmt: skip
    if is_api(request):
        return render(request, "map.html", data)
    return render(
        request, "map.html", data, colour=colour, points_json=_script_safe(json.dumps(data)),
        grid=f"/grid?{query_string(selection)}", query=request.url.query,
        colour_url=lambda c: f"/map?{query_string(selection, color=c if c != 'label' else None)}",
    )  # fmt: skip


def _scores(catalog: Catalog, ids: Any) -> list[float]:
    """Each drawn image's suspect score in the latest stored audit run (0: not suspected)."""
    suspects = suspects_of(catalog)
    if not suspects.by_image or not len(ids):
        return [0.0] * len(ids)
    dataset = catalog.rows_of(ids[:1].tolist())[0].dataset
    refs = suspects.ranked(dataset)
    suspect_ids = catalog.image_ids(refs, dataset=dataset) if refs else []
    by_id = {
        i: suspects.by_image[(dataset, split, index)].score
        for i, (split, index) in zip(suspect_ids, refs, strict=True)
    }
    return [by_id.get(i, 0.0) for i in ids.tolist()]


def _script_safe(text: str) -> str:
    """JSON that cannot close the ``<script>`` block holding it (stored names may hold
    ``</script>``)."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
