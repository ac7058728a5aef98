"""Version pages: the list of versions, and the diff of two drawn as thumbnails.

``/versions`` lists them (name, content id, images per split, note, who, when) with a
form that picks two to compare; ``/versions/diff?a=v1&b=v2`` shows the images added,
removed and relabelled (old -> new), each a thumbnail linked to its image page. Both
have a JSON twin under ``/api``. ``b`` may be ``current``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from catalog.web.pages import catalog_of
from catalog.web.params import ParameterError, check_names
from catalog.web.render import render

#: Thumbnails drawn per kind on the diff page (the JSON twin lists every image).
SHOWN = 400


def versions_page(request: Request) -> Response:
    check_names(request.query_params, ())
    found = [info.to_json() for info in catalog_of(request).versions()]
    return render(request, "versions.html", {"versions": found})


def diff_page(request: Request) -> Response:
    params = request.query_params
    check_names(params, ("a", "b"))
    a, b = params.get("a", "").strip(), params.get("b", "").strip()
    if not a or not b:
        msg = "Pick two versions to compare: ?a=NAME&b=NAME (b may be current)"
        raise ParameterError(msg)
    result = catalog_of(request).diff(a, b).to_json()
    return render(request, "version_diff.html", result, shown=SHOWN)
