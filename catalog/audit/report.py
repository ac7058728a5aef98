"""Audit reports for people: a summary for the terminal.

The JSON form is :meth:`AuditReport.to_json`; the HTML page is in
:mod:`catalog.audit.html_report`, apart, because it draws pictures (Pillow) and reads pixels.
"""

from __future__ import annotations

from catalog.audit import CHECKS
from catalog.audit.findings import SEVERITIES, AuditReport

#: Findings listed per check in the terminal summary.
TEXT_LIMIT = 8
MARKS = {"info": "·", "warning": "!", "error": "✗"}


def render_text(report: AuditReport) -> str:
    """A summary for the terminal: per check, the findings that matter most."""
    counts = report.counts()
    lines = [
        f"Audit of {', '.join(report.datasets) or 'an empty catalog'}"
        + (f" (splits {', '.join(report.splits)})" if report.splits else ""),
        f"  {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info",
    ]
    for check in CHECKS:
        if check not in report.checks:
            continue
        findings = sorted(
            (f for f in report.findings if f.check == check),
            key=lambda f: -SEVERITIES.index(f.severity),
        )
        seconds = sum(v for k, v in report.seconds.items() if k.endswith(check))
        lines.append("")
        lines.append(f"{check} ({seconds:.1f} s)")
        for name, summary in report.summary.get(check, {}).items():
            if isinstance(summary, dict) and summary.get("reuse"):
                lines.append(f"  ↻ {name}: {summary['reuse']}")
        if not findings:
            lines.append("  ✓ nothing found")
        for finding in findings[:TEXT_LIMIT]:
            lines.append(f"  {MARKS[finding.severity]} {finding.severity:<7} {finding.message}")
        if len(findings) > TEXT_LIMIT:
            lines.append(f"  ... and {len(findings) - TEXT_LIMIT} more (see --json or --html)")
        if check == "label-errors":
            lines += _ranking_lines(report)
    return "\n".join(lines)


def _ranking_lines(report: AuditReport) -> list[str]:
    out = []
    for name, summary in report.summary.get("label-errors", {}).items():
        for split, ranking in summary.get("ranking", {}).items():
            top = ", ".join(
                f"{r['index']} {r['label']}→{r['suggested']} ({r['score']:.2f})"
                for r in ranking[:5]
            )
            out.append(f"  top suspects in {name} {split}: {top}")
        if summary.get("skipped_reviewed"):
            out.append(
                f"  skipped {summary['skipped_reviewed']} suspects in {name} already reviewed "
                "(relabelled, tagged reviewed or excluded)"
            )
    return out
