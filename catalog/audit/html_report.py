"""Audit reports for people: a self-contained HTML page with contact sheets of the
images behind each finding."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from catalog.audit import CHECKS
from catalog.audit.findings import SEVERITIES, AuditReport, Finding, ImageRef
from catalog.db.models.images import Dataset, Image
from catalog.export.sheets import contact_sheet

#: Images drawn per finding on the HTML page.
SHEET_LIMIT = 100


def _load_pixels(session: Session, refs: Sequence[ImageRef]) -> list[npt.NDArray[np.uint8]]:
    """Pixels of the referenced images, in order."""
    by_key: dict[tuple[str, str, int], npt.NDArray[np.uint8]] = {}
    for name in sorted({r.dataset for r in refs}):
        wanted = [(r.split, r.index) for r in refs if r.dataset == name]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = (
                select(Image.split, Image.index, Image.height, Image.width, Image.pixels)
                .join(Dataset, Dataset.id == Image.dataset_id)
                .where(Dataset.name == name, tuple_(Image.split, Image.index).in_(chunk))
            )
            for split, index, height, width, pixels in session.execute(query):
                image = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
                by_key[(name, split, index)] = image
    blank = np.zeros((28, 28), dtype=np.uint8)
    return [by_key.get((r.dataset, r.split, r.index), blank) for r in refs]


def _sheet(
    session: Session,
    refs: Sequence[ImageRef],
    captions: Sequence[str],
    cols: int,
    title: str,
    scale: int = 2,
) -> str:
    pixels = _load_pixels(session, refs)
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:  # mixed sizes: pad into the largest
        height = max(s[0] for s in shapes)
        width = max(s[1] for s in shapes)
        pixels = [np.pad(p, ((0, height - p.shape[0]), (0, width - p.shape[1]))) for p in pixels]
    stacked = np.stack(pixels) if pixels else np.zeros((0, 28, 28), dtype=np.uint8)
    picture = contact_sheet(stacked, captions, cols=cols, scale=scale, title=title)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="sheet" alt="{html.escape(title)}" src="data:image/png;base64,{data}">'


def _caption(ref: ImageRef) -> str:
    return f"{ref.split}:{ref.index} [{ref.label}]"


def _finding_sheet(session: Session, finding: Finding) -> str:
    refs = finding.images[:SHEET_LIMIT]
    if not refs:
        return ""
    captions = [_caption(r) for r in refs]
    cols = 10
    if finding.check in ("exact-duplicates", "near-duplicates"):
        cols = max(2, min(len(refs), 10))  # the group side by side
    total = len(finding.images)
    shown = f", the first {len(refs):,} shown" if total > len(refs) else ""
    title = f"{finding.code}: {total:,} image{'s' if total != 1 else ''}{shown}"
    return _sheet(session, refs, captions, cols, title)


def _ranking_sheet(session: Session, name: str, split: str, ranking: list[dict[str, Any]]) -> str:
    refs = [ImageRef(name, r["split"], r["index"], r["label"], r["sha256"]) for r in ranking]
    captions = [f"{r['index']} {r['label']}>{r['suggested']} {r['score']:.2f}" for r in ranking]
    title = f"{name} {split}: top {len(refs)} suspected label errors (index given>suggested score)"
    return _sheet(session, refs, captions, 10, title, scale=3)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.finding { margin: 0.8rem 0; padding: 0.5rem 0.8rem; border-left: 4px solid #999; background: #fafafa; }
.error { border-color: #c62828; } .warning { border-color: #ef6c00; } .info { border-color: #1565c0; }
.sev { font-weight: bold; text-transform: uppercase; font-size: 0.8rem; margin-right: 0.5rem; }
.sheet { display: block; margin: 0.5rem 0; max-width: 100%; image-rendering: pixelated; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.6rem; border: 1px solid #ddd; text-align: right; }
.ok { color: #2e7d32; }
"""


def render_html(report: AuditReport, session: Session) -> str:
    """One self-contained page: summary, findings, and their contact sheets (PNG, inline)."""
    counts = report.counts()
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Audit of {html.escape(', '.join(report.datasets))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Audit of {html.escape(', '.join(report.datasets) or 'an empty catalog')}</h1>",
        (
            f"<p>{report.generated_at} &middot; {counts['error']} error(s), "
            f"{counts['warning']} warning(s), {counts['info']} info</p>"
        ),
    ]
    for check in CHECKS:
        if check not in report.checks:
            continue
        parts.append(f"<h2 id='{check}'>{check}</h2>")
        findings = sorted(
            (f for f in report.findings if f.check == check),
            key=lambda f: -SEVERITIES.index(f.severity),
        )
        if check == "balance":
            parts.append(_balance_table(report))
        if not findings:
            parts.append("<p class='ok'>Nothing found.</p>")
        if check == "label-errors":
            for name, summary in report.summary.get("label-errors", {}).items():
                parts.append(
                    f"<p>Each image judged by a model that never saw it "
                    f"({html.escape(str(summary.get('method')))}); score = p(suggested) - "
                    f"p(given); findings at score &ge; {summary.get('threshold')}.</p>"
                )
                for split, ranking in summary.get("ranking", {}).items():
                    parts.append(_ranking_sheet(session, name, split, ranking))
            findings = findings[:20]  # the sheet above shows them all
        for finding in findings[:200]:
            parts.append(
                f"<div class='finding {finding.severity}'><span class='sev'>{finding.severity}</span>"
                f"{html.escape(finding.message)}"
            )
            if check != "label-errors":
                parts.append(_finding_sheet(session, finding))
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _balance_table(report: AuditReport) -> str:
    tables = []
    for name, summary in report.summary.get("balance", {}).items():
        labels = summary.get("labels", list(range(10)))
        rows = []
        for split, counts in summary["counts"].items():
            cells = "".join(f"<td>{n:,}</td>" for n in counts)
            rows.append(f"<tr><th>{html.escape(name)} {html.escape(split)}</th>{cells}</tr>")
        header = "<tr><th></th>" + "".join(f"<th>{label}</th>" for label in labels) + "</tr>"
        tables.append(f"<table>{header}{''.join(rows)}</table>")
    return "".join(tables)
