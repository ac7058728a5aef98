"""``db check``: is the catalog what it says it is? As ``git fsck`` is to git.

Each check reads one kind of row and names every one that is not what it should be:

``storage`` (:mod:`~catalog.integrity.storage`)
    SQLite's own check of the file (pages, b-trees, indexes against their tables).
``pixels`` (:mod:`~catalog.integrity.pixels`)
    Every image's pixels against their size and the sha256 stored beside them,
    read in pages sized in bytes.
``decisions`` (:mod:`~catalog.integrity.decisions`)
    The decision log replayed against ``image_state`` and ``image_tags``.
``label-counts`` (:mod:`~catalog.integrity.label_counts`)
    The ``label_counts`` summary against the images.
``files`` (given as ``files=``: :func:`catalog.audit.recorded_files.broken_files`)
    Every exported file on record against the disk. The files check is the audit's, a
    layer above this one, so the caller hands it in (``Catalog.check`` does).

All checks read one snapshot of the catalog (one read transaction; REPEATABLE READ on
PostgreSQL), so a catalog being written while it is checked is checked as it was at
the start. Nothing is written. Adding a check is adding a module with ``run(session,
found, progress) -> rows read`` (the :class:`~catalog.integrity.report.Check` protocol)
and one line in :data:`CHECKS`.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.exports import ExportedFile
from catalog.db.models.images import Image
from catalog.integrity import decisions, label_counts, pixels, storage
from catalog.integrity.report import Check, Found, IntegrityReport, Progress

#: Every check, in the order it runs (``files`` after them, when given).
CHECKS: dict[str, Check] = {
    "storage": storage.run,
    "pixels": pixels.run,
    "decisions": decisions.run,
    "label-counts": label_counts.run,
}


def check_catalog(
    session: Session,
    *,
    files: Check | None = None,
    progress: Progress | None = None,
    on_total: Progress | None = None,
) -> IntegrityReport:
    """Run every check on the catalog ``session`` reads; nothing is written.

    Parameters
    ----------
    session
        A session that has not read yet: its transaction is the snapshot checked.
    files
        The check of every exported file on record, when wanted
        (:func:`catalog.audit.recorded_files.broken_files`).
    progress
        Called with the number of images (and files) read as the checks go.
    on_total
        Called first with how many images (and files) there are to read.

    Returns
    -------
    IntegrityReport
        The rows each check read and the broken rows it named (``report.ok`` when none).
    """
    if session.get_bind().dialect.name == "postgresql":  # one snapshot for every query
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    if on_total is not None:
        on_total(_work(session, files is not None))
    found = Found()
    report = IntegrityReport()
    checks = CHECKS | ({"files": files} if files is not None else {})
    for name, check in checks.items():
        start = time.perf_counter()
        report.checked[name] = check(session, found, progress)
        report.seconds[name] = round(time.perf_counter() - start, 3)
    report.broken = found.rows
    report.broken_counts = dict(found.counts)
    return report


def _work(session: Session, with_files: bool) -> int:
    """How many images (and files) :func:`check_catalog` reads, to size a progress bar."""
    total = int(session.scalar(select(func.count()).select_from(Image)) or 0)
    if with_files:
        total += int(session.scalar(select(func.count()).select_from(ExportedFile)) or 0)
    return total
