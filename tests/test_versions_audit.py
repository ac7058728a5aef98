"""--version on audit and identify: only the version's images, with its frozen labels."""

from __future__ import annotations

import json
from pathlib import Path

from test_versions import cli, write_sources

from catalog import Catalog


def test_audit_and_identify_within_a_version(catalog: Catalog, tmp_path: Path, db_url: str) -> None:
    catalog.ingest(write_sources(tmp_path / "src"), dataset="digits")
    catalog.freeze("v1")
    catalog.freeze("threes", catalog.select(labels=3))
    catalog.relabel("train:3", 7)
    catalog.exclude("train:13", reason="smudged")
    balance = catalog.audit(version="v1", checks=["balance"]).summary["balance"]["digits"]
    assert balance["counts"]["train"] == [3] * 10  # frozen labels, the excluded image kept
    now = catalog.audit(checks=["balance"]).summary["balance"]["digits"]
    assert now["counts"]["train"] == [3, 3, 3, 2, 3, 3, 3, 4, 3, 3]  # the audit keeps excluded ones
    code, out, _ = cli(db_url, "audit", "--version", "threes", "--check", "balance", "--json")
    assert code in (0, 1)
    report = json.loads(out)
    assert report["summary"]["balance"]["digits"]["counts"]["train"] == [
        0,
        0,
        0,
        3,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
    result = catalog.identify(version="threes", store=False)
    assert len(result) == 4
    assert result.dataset == "digits"
    code, out, _ = cli(db_url, "identify", "--version", "threes", "--json")
    assert code == 0
    assert json.loads(out)["dataset"] == "digits"
    code, _, err = cli(db_url, "audit", "--version", "nope")
    assert (code, err) == (
        1,
        "Error: No version named 'nope' in the catalog (versions: v1, threes)\n",
    )
