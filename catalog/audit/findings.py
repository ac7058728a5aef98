"""What an audit returns: findings about images, gathered into a report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")
#: JSON report format version; bumped when keys change meaning.
REPORT_VERSION = 1


@dataclass(frozen=True)
class ImageRef:
    """An image a finding is about."""

    dataset: str
    split: str
    index: int
    label: int | None  # None: published without a label
    sha256: str


@dataclass
class Finding:
    check: str
    code: str
    severity: str
    message: str
    images: list[ImageRef] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditReport:
    """Everything an audit found. ``to_json`` gives the documented JSON shape."""

    datasets: list[str]
    splits: list[str]
    checks: list[str]
    generated_at: str
    findings: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # per check: numbers
    seconds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            out[finding.severity] += 1
        return out

    @property
    def worst(self) -> str | None:
        present = {f.severity for f in self.findings}
        for severity in reversed(SEVERITIES):
            if severity in present:
                return severity
        return None

    def problems(self, at_least: str = "warning") -> list[Finding]:
        floor = SEVERITIES.index(at_least)
        return [f for f in self.findings if SEVERITIES.index(f.severity) >= floor]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "generated_at": self.generated_at,
            "datasets": self.datasets,
            "splits": self.splits,
            "checks": self.checks,
            "counts": self.counts(),
            "summary": self.summary,
            "seconds": self.seconds,
            "findings": [asdict(f) for f in self.findings],
        }
