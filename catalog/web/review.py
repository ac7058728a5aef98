"""The audit's findings, and review mode: one label-error suspect at a time.

Suspects are the latest stored audit run's label-error ranking (``mnist-catalog
audit`` records it). Each key in review mode is one POST to ``/api/decide``, a
curation decision by the reviewer: ``keep`` tags the image ``reviewed``,
``relabel`` relabels it, ``exclude`` excludes it, ``undo`` reverts the reviewer's
own latest decision about it that is not already undone.

A decision carries ``seen``, the latest decision id about the image the page
showed (``null``: none). If another one came since, the answer is 409 with that
decision, and nothing is recorded (see :mod:`catalog.curation.seen`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from catalog.api.handle import Catalog
from catalog.audit import CHECKS
from catalog.audit.runs import StoredRun
from catalog.curation.seen import UNCHECKED, Seen
from catalog.errors import (
    CatalogError,
    DatasetNotFoundError,
    ImageNotFoundError,
    SelectionError,
)
from catalog.web.bodies import json_object, read_body
from catalog.web.findings import page_findings
from catalog.web.pages import MAX_INDEX, catalog_of, history_of, neighbours_of, neighbours_url
from catalog.web.params import ParameterError, check_names, parse_int
from catalog.web.progress import review_progress
from catalog.web.render import render
from catalog.web.security import Access, reviewer

#: Findings listed per check on the audit page unless ``limit`` says otherwise, and the most.
FINDINGS_SHOWN = 60
MAX_FINDINGS = 1000
ACTIONS = ("keep", "relabel", "exclude", "undo")
REVIEWED_TAG = "reviewed"
NEIGHBOURS = 12


class NoAuditError(CatalogError):
    """The catalog holds no stored audit run to show."""


def known_dataset(catalog: Catalog, dataset: str | None) -> None:
    """Raise :class:`DatasetNotFoundError` (404) if ``dataset`` is given and unknown."""
    if dataset is None:
        return
    names = [summary.name for summary in catalog.datasets(counts=False)]
    if dataset not in names:
        msg = f"No dataset {dataset[:64]!r} in the catalog: expected one of {', '.join(names) or 'none'}"
        raise DatasetNotFoundError(msg)


def latest(catalog: Catalog, dataset: str | None, *, findings: bool = True) -> StoredRun:
    run = catalog.latest_audit(dataset, findings=findings)
    if run is None:
        where = f" of dataset {dataset}" if dataset else ""
        msg = f"No audit run{where} is stored yet: run `mnist-catalog audit` first"
        raise NoAuditError(msg)
    return run


def audit_page(request: Request) -> Response:
    check_names(request.query_params, ("dataset", "limit", "check", "page"))
    limit = parse_int(request.query_params, "limit", FINDINGS_SHOWN, 0, MAX_FINDINGS)
    known_dataset(catalog_of(request), request.query_params.get("dataset"))
    run = catalog_of(request).latest_audit(request.query_params.get("dataset"))
    if run is None:
        return render(request, "audit.html", {"run": None, "checks": {}})
    report = run.report
    checks: dict[str, dict[str, Any]] = {}
    for check in [c for c in CHECKS if c in report.checks]:
        found = [f for f in report.findings if f.check == check]
        checks[check] = {
            "count": len(found),
            "findings": [asdict(f) for f in found[:limit]],
            "summary": report.summary.get(check, {}),
        }
    checks = page_findings(request.query_params, report, checks, limit)  # web/findings.py
    data = {
        "run": run.id, "recorded_at": run.recorded_at, "generated_at": report.generated_at,
        "datasets": report.datasets, "splits": report.splits, "counts": report.counts(),
        "checks": checks, "suspects": _rankings(run),
    }  # fmt: skip
    return render(request, "audit.html", data)


def _rankings(run: StoredRun) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per dataset and split, the label-error ranking the run stored."""
    summary = run.report.summary.get("label-errors", {})
    return {
        name: dict(part.get("ranking", {}))
        for name, part in summary.items()
        if isinstance(part, dict) and "ranking" in part
    }


def review_page(request: Request) -> Response:
    params = request.query_params
    check_names(params, ("dataset", "split", "n", "undecided"))
    catalog = catalog_of(request)
    known_dataset(catalog, params.get("dataset"))
    run = latest(catalog, params.get("dataset"), findings=False)
    rankings = _rankings(run)
    if not rankings:
        msg = f"Audit run #{run.id} has no label-error ranking: run `mnist-catalog audit`"
        raise NoAuditError(msg)
    dataset = params.get("dataset") or min(rankings)
    splits = rankings.get(dataset, {})
    split = params.get("split") or ("test" if "test" in splits else next(iter(splits), ""))
    if split not in splits:
        msg = f"No suspects of split {split!r} in audit run #{run.id}: expected one of {', '.join(splits) or 'none'}"
        raise SelectionError(msg)
    suspects = splits[split]
    n = parse_int(params, "n", 1, 1, max(1, len(suspects)))
    if not suspects:
        return render(request, "review.html", {"run": run.id, "total": 0, "suspect": None})
    progress = review_progress(catalog, dataset, split, suspects, n, params)  # web/progress.py
    n = progress["n"]
    ref = suspects[n - 1]
    details = catalog.image_details(split, int(ref["index"]), dataset=dataset)
    base = f"/review?dataset={dataset}&split={split}&n="
    data = {
        "run": run.id, "dataset": dataset, "split": split, "splits": list(splits),
        "position": n, "total": len(suspects),
        "suspect": {
            **details.to_json(), "given": ref["label"], "suggested": ref["suggested"],
            "score": ref["score"], "url": f"/image/{dataset}/{split}/{ref['index']}",
            "thumb": f"/thumb/{details.row.sha256}.png",
        },
        "history": history_of(catalog, details.row),
        "neighbours": neighbours_of(catalog, details.row, NEIGHBOURS),  # None: they follow
        "neighbours_url": neighbours_url(details.row, NEIGHBOURS),
        "prev": f"{base}{n - 1}" if n > 1 else None,
        "next": f"{base}{n + 1}" if n < len(suspects) else None,
    }  # fmt: skip
    data.update(progress=progress, prev=progress["prev"], next=progress["next"])
    return render(request, "review.html", data)


async def decide(request: Request) -> Response:
    """Record one review decision (POST, JSON body) and answer the image's new state."""
    access: Access = request.app.state.access
    access.check_write(request)
    asked = json_object(await read_body(request))
    by = reviewer(request, asked.get("by"))
    if by is None:
        msg = "Who decides? Give your name (the page asks once; scripts send 'by')"
        raise ParameterError(msg)
    return await run_in_threadpool(_decide, catalog_of(request), asked, by)


def _decide(catalog: Catalog, asked: dict[str, Any], by: str) -> Response:
    action, dataset, split = asked.get("action"), asked.get("dataset"), asked.get("split")
    index = asked.get("index")
    if action not in ACTIONS:
        msg = f"Unknown action {str(action)[:40]!r}: expected one of {', '.join(ACTIONS)}"
        raise ParameterError(msg)
    if not isinstance(split, str) or not isinstance(index, int) or isinstance(index, bool):
        msg = "A decision names its image by split (text) and index (a whole number)"
        raise ParameterError(msg)
    if not 0 <= index <= MAX_INDEX:
        msg = f"No image {split[:32]}:{index}: the index is out of range"
        raise ImageNotFoundError(msg)
    if dataset is not None and not isinstance(dataset, str):
        msg = "dataset must be text"
        raise ParameterError(msg)
    if not all(t.isprintable() for t in (split, dataset or "", str(asked.get("label", "")))):
        msg = "The decision holds control characters: refused"
        raise ParameterError(msg)
    seen = _seen(asked)
    ref = f"{split}:{index}"
    if action == "keep":
        summary = catalog.tag(
            REVIEWED_TAG, ref, dataset=dataset, by=by, note="kept in review", seen=seen
        )
    elif action == "relabel":
        label = asked.get("label")
        if not isinstance(label, int | str) or isinstance(label, bool):
            msg = "relabel needs a label"
            raise ParameterError(msg)
        summary = catalog.relabel(ref, label, dataset=dataset, by=by, note="review", seen=seen)
    elif action == "exclude":
        summary = catalog.exclude(
            ref, reason="excluded in review", dataset=dataset, by=by, seen=seen
        )
    else:
        summary = catalog.undo_latest(ref, by=by, dataset=dataset, seen=seen)
    details = catalog.image_details(split, index, dataset=dataset)
    return JSONResponse({
        "summary": summary.describe(), "recorded": summary.recorded, "image": details.to_json(),
        "history": history_of(catalog, details.row),
    })  # fmt: skip


def _seen(asked: dict[str, Any]) -> Seen:
    """The body's ``seen``: a decision id, null (none seen), or absent (not checked)."""
    if "seen" not in asked:
        return UNCHECKED
    seen = asked["seen"]
    if seen is None:
        return None
    if not isinstance(seen, int) or isinstance(seen, bool) or not 0 <= seen <= MAX_INDEX:
        msg = "seen is the id of the latest decision the page showed (a whole number) or null"
        raise ParameterError(msg)
    return seen
