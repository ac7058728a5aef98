"""Review mode's progress: how many of a split's ranked suspects have a decision (done)
and how many have none (left), and with ``undecided=1`` the way through the ranking
that stops only at suspects nobody has decided about yet."""

from __future__ import annotations

from typing import Any

from catalog.api.handle import Catalog
from catalog.web.params import ParameterError


def review_progress(
    catalog: Catalog, dataset: str, split: str, suspects: list[dict[str, Any]], n: int,
    params: Any,
) -> dict[str, Any]:  # fmt: skip
    """Done and left among ``suspects`` (ranked, each with an ``index``), the position
    to show (``n``, moved on to the next undecided one when ``undecided=1``) and the
    previous and next positions (None at either end)."""
    flag = params.get("undecided", "0")
    if flag not in ("0", "1", ""):
        msg = f"Parameter undecided={flag[:20]!r}: expected 1 or 0"
        raise ParameterError(msg)
    only = flag in ("1", "")  # ?undecided alone means yes
    ids = catalog.image_ids([(split, int(s["index"])) for s in suspects], dataset=dataset)
    decided_ids = {row.id for row in catalog.rows_of(ids) if row.decision is not None}
    decided = [i in decided_ids for i in ids]
    done = sum(decided)
    wanted = [k + 1 for k, d in enumerate(decided) if not (only and d)]
    if only and wanted and n not in wanted:
        n = next((k for k in wanted if k > n), wanted[-1])
    before = [k for k in wanted if k < n]
    after = [k for k in wanted if k > n]
    base = f"/review?dataset={dataset}&split={split}{'&undecided=1' if only else ''}&n="
    return {
        "done": done, "left": len(suspects) - done, "total": len(suspects),
        "undecided_only": only, "n": n, "decided": bool(decided[n - 1]) if suspects else False,
        "prev": f"{base}{before[-1]}" if before else None,
        "next": f"{base}{after[0]}" if after else None,
        "switch": f"/review?dataset={dataset}&split={split}&n={n}" + ("" if only else "&undecided=1"),
    }  # fmt: skip
