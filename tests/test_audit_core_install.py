"""The plain install audits everything: no optional extra (and not even faiss) importable.

faiss-cpu and threadpoolctl are core dependencies, but the audit must not depend on them
being importable: where faiss cannot be loaded, the nearest-neighbour search is exact.
This runs ``python -m catalog audit`` as a user would, in a fresh process where faiss,
threadpoolctl and every optional extra fail to import, on more than 10,000 images (the
size above which the search used to need faiss).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_audit_scale import ingest_digits

from catalog import Catalog
from catalog.audit import CHECKS

#: Modules a plain install may lack; the sitecustomize below makes each fail to import.
BLOCKED = ("faiss", "threadpoolctl", "torch", "pyarrow", "datasets", "psycopg", "starlette",
           "uvicorn", "jinja2")  # fmt: skip

SITECUSTOMIZE = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # import name -> ImportError
"""


@pytest.mark.slow
def test_audit_of_12000_images_runs_every_check_without_faiss_or_extras(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog.open(url) as catalog:
        ingest_digits(catalog, tmp_path / "src", 12_000)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(root)])}
    probe = subprocess.run(
        [sys.executable, "-c", "import faiss"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert probe.returncode == 1
    assert "ModuleNotFoundError" in probe.stderr or "ImportError" in probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "catalog", "--db", url, "audit", "--json", "--no-store"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr  # 1: findings that are errors
    report = json.loads(result.stdout)
    assert report["checks"] == list(CHECKS)
    summary = report["summary"]
    near = summary["near-duplicates"]["digits"]
    assert near["searched"] == 12_000
    assert near["pairs"] >= 2  # the two planted copies (ingest_digits), found exactly
    labels = summary["label-errors"]["digits"]
    assert labels["fitted_on"] == 12_000 * 4 // 5
    assert len(labels["ranking"]["test"]) == 100
    assert {f["check"] for f in report["findings"]} >= {"near-duplicates"}
