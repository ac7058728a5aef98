"""Audit runs and their findings, stored so that ``audit`` and the web view agree.

``mnist-catalog audit`` records each run (unless ``--no-store``); the web view shows the
latest. A run keeps what the report's JSON holds: the datasets, splits and checks it
covered, the per-check summaries (the label-error ranking among them) and timings; each
finding is a row of its own, with the images it names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base, utcnow
from catalog.db.types import UTCDateTime


class AuditRun(Base):
    """One run of the audit: what it covered, its summaries, when it ran."""

    __tablename__ = "audit_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    generated_at: Mapped[str] = mapped_column(String(40))  # the report's own timestamp
    datasets: Mapped[list[str]] = mapped_column(JSON)
    splits: Mapped[list[str]] = mapped_column(JSON)
    checks: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[dict[str, float]] = mapped_column(JSON)


class AuditFinding(Base):
    """One finding of a run, in report order (``position``)."""

    __tablename__ = "audit_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    check: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    images: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # ImageRef fields
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
