"""A small catalog for the web view's tests: learnable digits with planted label errors,
audited, the run stored.

The audit (a label-error model) takes seconds, so it runs once per test session on a
catalog of its own; each test's catalog ingests the same files and records that report.
"""

from __future__ import annotations

from pathlib import Path

from builders import write_idx_pair
from test_audit import class_digits

from catalog import Catalog
from catalog.audit import AuditReport

#: Test images whose label was changed: (index, given label).
PLANTED = ((4, 3), (17, 8), (25, 0), (33, 6))
CHECKS = ("balance", "odd-images", "label-errors")


def write_sources(folder: Path) -> Path:
    """400 train and 100 test digits as IDX files, four test labels flipped."""
    train_x, train_y = class_digits(40, seed=1)
    test_x, test_y = class_digits(10, seed=2)
    for index, label in PLANTED:
        assert test_y[index] != label
        test_y[index] = label
    write_idx_pair(folder, "train", train_x, train_y)
    write_idx_pair(folder, "t10k", test_x, test_y)
    return folder


def audit_sources(folder: Path) -> AuditReport:
    """The audit of ``folder`` ingested as ``digits`` (in a catalog of its own)."""
    with Catalog.open(folder / "audit.db") as catalog:
        catalog.ingest(folder, dataset="digits")
        return catalog.audit(checks=list(CHECKS))


def build_web_catalog(catalog: Catalog, folder: Path, report: AuditReport) -> Catalog:
    """Ingest ``folder`` as ``digits`` into ``catalog`` and store ``report`` as its audit."""
    catalog.ingest(folder, dataset="digits")
    catalog.record_audit(report)
    return catalog
