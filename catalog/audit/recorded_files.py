"""Every exported file on record against the disk, as ``db check --files`` reports it.

The files check (:func:`catalog.audit.files.check_files`) does the reading: each
recorded file hashed by a few threads, a changed image file decoded and compared with
the catalog's pixels. Here each file it finds missing, changed or unreadable is a broken
row; files in export folders that the catalog never recorded are not rows of the
catalog, and are left to ``audit --check files``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.audit.files import check_files
from catalog.db.models.images import Dataset
from catalog.integrity.report import Found, Progress

#: The audit's finding codes that name a recorded file gone wrong.
BROKEN = ("missing", "changed", "unreadable", "pixels-differ", "container-changed")


def broken_files(session: Session, found: Found, progress: Progress | None) -> int:
    """Check every recorded exported file, adding each broken one to ``found`` (an
    :class:`~catalog.integrity.report.Check` that ``check_catalog`` takes as ``files``);
    returns how many there are."""
    ids = list(session.scalars(select(Dataset.id)))
    findings, summary = check_files(session, ids, progress)
    for finding in findings:
        if finding.code not in BROKEN:
            continue
        paths, reasons = finding.details["paths"], finding.details["reasons"]
        for image, path, reason in zip(finding.images, paths, reasons, strict=True):
            of = f"{image.dataset} {image.split}:{image.index}"
            found.add("files", f"exported file {path}", f"(of {of}): {reason}")
    return int(summary["recorded"])
