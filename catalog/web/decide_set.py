"""``POST /api/decide-set``: one action on many images of the grid, recorded as one
decision set, and its undo.

The body is JSON: ``{"action": "tag", "tag": "blurry", "dataset": "mnist",
"images": ["test:3", "test:17"]}`` (actions ``tag``, ``untag``, ``exclude``,
``include``, ``relabel`` with ``label``), or ``{"action": "undo", "set": 42,
"dataset": ..., "images": [...]}`` to revert every decision of set 42. The write
checks are the decision endpoint's (token, CSRF, Origin, read-only); the answer is
the set's summary and the new state of each image named.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from catalog.api.handle import Catalog
from catalog.curation.sets import SET_ACTIONS
from catalog.web.bodies import json_object, read_body
from catalog.web.gridview import image_state
from catalog.web.pages import MAX_INDEX
from catalog.web.params import MAX_PAGE_SIZE, ParameterError
from catalog.web.security import Access, reviewer
from catalog.web.suspects import suspects_of

#: Largest body: a thousand image names and the rest.
MAX_BODY = 64 * 1024


def _refs(asked: dict[str, Any]) -> list[str]:
    images = asked.get("images")
    if not isinstance(images, list) or not images:
        msg = "A decision set names its images: images is a list of 'split:index'"
        raise ParameterError(msg)
    if len(images) > MAX_PAGE_SIZE:
        msg = f"A decision set from the page names at most {MAX_PAGE_SIZE:,} images"
        raise ParameterError(msg)
    for image in images:
        split, _, index = image.rpartition(":") if isinstance(image, str) else ("", "", "")
        good = split and split.isprintable() and len(split) <= 32 and index.isdigit()
        if not good or int(index) > MAX_INDEX:
            msg = f"Image {str(image)[:40]!r} is not named 'split:index' (for example test:1530)"
            raise ParameterError(msg)
    return list(dict.fromkeys(images))


def _text(asked: dict[str, Any], name: str) -> str | None:
    value = asked.get(name)
    if value is not None and (not isinstance(value, str) or not value.isprintable()):
        msg = f"{name} must be printable text"
        raise ParameterError(msg)
    return value


async def decide_set(request: Request) -> Response:
    """Record one decision set (or undo one) and answer the images' new state."""
    access: Access = request.app.state.access
    access.check_write(request)
    asked = json_object(await read_body(request, MAX_BODY), max_bytes=MAX_BODY)
    by = reviewer(request, asked.get("by"))
    if by is None:
        msg = "Who decides? Give your name (the page asks once; scripts send 'by')"
        raise ParameterError(msg)
    catalog: Catalog = request.app.state.catalog
    return await run_in_threadpool(_decide, catalog, asked, by)


def _decide(catalog: Catalog, asked: dict[str, Any], by: str) -> Response:
    action = asked.get("action")
    if action not in (*SET_ACTIONS, "undo"):
        msg = f"Unknown action {str(action)[:40]!r}: expected one of {', '.join(SET_ACTIONS)}, undo"
        raise ParameterError(msg)
    dataset, refs = _text(asked, "dataset"), _refs(asked)
    if action == "undo":
        number = asked.get("set")
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**31:
            msg = "undo names the decision set: set is a whole number"
            raise ParameterError(msg)
        summary = catalog.undo_set(number, by=by)
    else:
        label = asked.get("label")
        if label is not None and (not isinstance(label, int | str) or isinstance(label, bool)):
            msg = "label is a number or a class name"
            raise ParameterError(msg)
        summary = catalog.decide_set(
            action, refs, dataset=dataset, label=label, tag=_text(asked, "tag"),
            note=_text(asked, "note") or "grid", by=by,
        )  # fmt: skip
    places = [(ref.rpartition(":")[0], int(ref.rpartition(":")[2])) for ref in refs]
    ids = catalog.image_ids(places, dataset=dataset)
    suspects = suspects_of(catalog)
    return JSONResponse({
        "summary": summary.describe(), "recorded": summary.recorded, "set": summary.set_id,
        "images": [image_state(row, suspects) for row in catalog.rows_of(ids)],
    })  # fmt: skip
