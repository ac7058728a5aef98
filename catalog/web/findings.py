"""The audit page's findings a page at a time: ``/audit?check=label-errors&page=3``
shows findings 2*limit+1 to 3*limit of that check alone, so every finding is reachable
(the page without ``check`` lists the first ``limit`` of each check, with links here)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from catalog.audit.findings import AuditReport
from catalog.web.params import ParameterError, parse_int


def page_findings(
    params: Any, report: AuditReport, checks: dict[str, dict[str, Any]], limit: int
) -> dict[str, dict[str, Any]]:
    """``checks`` as the audit page shows them: each with its number of pages, and only
    the asked check's asked page when ``check`` is given."""
    size = max(limit, 1)
    for part in checks.values():
        part["pages"] = max(1, -(-part["count"] // size))
        part["page"] = 1
    name = params.get("check")
    if name is None:
        if "page" in params:
            msg = "Parameter page needs check: the findings of which check?"
            raise ParameterError(msg)
        return checks
    if name not in checks:
        msg = f"Parameter check={name[:40]!r}: expected one of {', '.join(checks) or 'none'}"
        raise ParameterError(msg)
    part = checks[name]
    page = parse_int(params, "page", 1, 1, 10**9)
    if page > part["pages"]:
        msg = f"Parameter page={page} is past the last page of {name}, {part['pages']}"
        raise ParameterError(msg)
    found = [f for f in report.findings if f.check == name]
    part["findings"] = [asdict(f) for f in found[(page - 1) * size : page * size]]
    part["page"], part["first"] = page, (page - 1) * size + 1
    return {name: part}
