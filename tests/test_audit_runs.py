"""Audit runs stored in the catalog: what ``audit`` records is what the web view reads."""

from __future__ import annotations

import json

from test_cli import run

from catalog import Catalog
from catalog.audit import AuditReport, Finding, ImageRef


def test_a_recorded_run_reads_back_as_the_same_report(tiny_catalog: Catalog) -> None:
    report = tiny_catalog.audit(checks=["balance", "odd-images", "exact-duplicates"])
    report.findings.append(
        Finding("odd-images", "planted", "warning", "a finding with an image",
                [ImageRef("tiny", "test", 1, 3, "ab" * 32)], {"score": 0.5, "given": 3})
    )  # fmt: skip
    first = tiny_catalog.record_audit(report)
    second = tiny_catalog.record_audit(report)
    assert second > first
    stored = tiny_catalog.latest_audit()
    assert stored is not None
    assert stored.id == second
    assert stored.report.to_json() == json.loads(json.dumps(report.to_json()))
    assert stored.counts == report.counts()
    header = tiny_catalog.latest_audit("tiny", findings=False)
    assert header is not None
    assert (header.id, header.report.findings, header.counts) == (second, [], report.counts())
    assert tiny_catalog.latest_audit("other") is None


def test_no_run_before_any_audit(catalog: Catalog) -> None:
    assert catalog.latest_audit() is None


def test_audit_command_records_its_run_unless_told_not_to(db_url: str) -> None:
    from conftest import TINY

    assert run(db_url, "ingest", str(TINY), "--dataset", "tiny")[0] == 0
    run(db_url, "audit", "--check", "balance", "--no-store")
    with Catalog.open(db_url) as catalog:
        assert catalog.latest_audit() is None
    _code, out, _ = run(db_url, "audit", "--check", "balance", "--json")
    with Catalog.open(db_url) as catalog:
        stored = catalog.latest_audit()
    assert stored is not None
    assert isinstance(stored.report, AuditReport)
    assert stored.report.checks == ["balance"]
    assert stored.report.to_json()["findings"] == json.loads(out)["findings"]
