"""Audit runs kept in the catalog: record a report, read the latest one back.

``mnist-catalog audit`` records its run (unless ``--no-store``), so the web view
shows the same findings the command printed. Reading needs nothing more than
the read access an audit needs; recording writes two tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from catalog.audit.findings import SEVERITIES, AuditReport, Finding, ImageRef
from catalog.db.models.audit_runs import AuditFinding, AuditRun


@dataclass
class StoredRun:
    """An audit run read back from the catalog: its id, when it was recorded, its report."""

    id: int
    recorded_at: str
    report: AuditReport  # without findings when read with ``findings=False``
    counts: dict[str, int]  # findings per severity


def record_run(session: Session, report: AuditReport) -> int:
    """Store ``report`` as a new audit run with its findings; return the run's id."""
    run = AuditRun(
        generated_at=report.generated_at, datasets=list(report.datasets),
        splits=list(report.splits), checks=list(report.checks),
        summary=_plain(report.summary), seconds=_plain(report.seconds),
    )  # fmt: skip
    session.add(run)
    session.flush()
    if report.findings:
        rows = [
            {
                "run_id": run.id, "position": n, "check": f.check, "code": f.code,
                "severity": f.severity, "message": f.message,
                "images": _plain([asdict(ref) for ref in f.images]), "details": _plain(f.details),
            }
            for n, f in enumerate(report.findings)
        ]  # fmt: skip
        session.execute(insert(AuditFinding), rows)
    return run.id


def _plain(value: Any) -> Any:
    """``value`` as plain JSON values (numpy numbers and the like as the report prints them)."""
    return json.loads(json.dumps(value, default=str))


def latest_run(
    session: Session, dataset: str | None = None, *, findings: bool = True
) -> StoredRun | None:
    """The most recent audit run (that covered ``dataset``, if given), or None.

    With ``findings=False`` only the run's header, summaries and counts are read.
    """
    runs = session.scalars(select(AuditRun).order_by(AuditRun.id.desc()))
    for run in runs:
        if dataset is None or dataset in run.datasets:
            return load_run(session, run, findings=findings)
    return None


def load_run(session: Session, run: AuditRun, *, findings: bool = True) -> StoredRun:
    """``run`` as a :class:`StoredRun`, with its findings unless ``findings=False``."""
    counts = dict.fromkeys(SEVERITIES, 0)
    by_severity = (
        select(AuditFinding.severity, func.count())
        .where(AuditFinding.run_id == run.id)
        .group_by(AuditFinding.severity)
    )
    for severity, n in session.execute(by_severity):
        counts[severity] = int(n)
    rows: Iterable[AuditFinding] = (
        session.scalars(
            select(AuditFinding)
            .where(AuditFinding.run_id == run.id)
            .order_by(AuditFinding.position)
        )
        if findings
        else []
    )
    found = [
        Finding(
            row.check,
            row.code,
            row.severity,
            row.message,
            [ImageRef(**ref) for ref in row.images],
            dict(row.details),
        )
        for row in rows
    ]
    report = AuditReport(
        datasets=list(run.datasets), splits=list(run.splits), checks=list(run.checks),
        generated_at=run.generated_at, findings=found, summary=dict(run.summary),
        seconds=dict(run.seconds),
    )  # fmt: skip
    return StoredRun(run.id, run.recorded_at.isoformat(timespec="seconds"), report, counts)
