"""``mnist-catalog count`` starts light: a count needs SQLAlchemy and the selection's SQL,
not numpy, Pillow, Alembic (the catalog is at head), the audit or the writers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from builders import random_digits, write_image_folder

from catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
#: Packages a count must not import (top-level names, or catalog's own subpackages).
HEAVY = ("numpy", "PIL", "alembic", "faiss", "torch", "pyarrow", "catalog.audit",
         "catalog.identity", "catalog.export", "catalog.similarity", "catalog.sources")  # fmt: skip


def imported_by(*args: str) -> tuple[str, list[str]]:
    """Run ``python -X importtime -m catalog ARGS``; its output and the modules it imported."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "catalog", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout, re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, re.MULTILINE)


def test_count_imports_no_numpy_pillow_alembic_or_audit(tmp_path: Path, db_url: str) -> None:
    pixels, labels = random_digits(12, seed=1)
    labels[:] = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    write_image_folder(tmp_path / "drawn", {"train": (pixels[:9], labels[:9]),
                                            "test": (pixels[9:], labels[9:])})  # fmt: skip
    with Catalog.open(db_url) as catalog:
        catalog.ingest(tmp_path / "drawn", dataset="drawn")
    out, imported = imported_by("--db", db_url, "count", "--by", "split,label")
    assert out.split() == [
        "split", "label", "count", "test", "0", "1", "test", "1", "1", "test", "2", "1",
        "train", "0", "3", "train", "1", "3", "train", "2", "3", "total", "12",
    ]  # fmt: skip
    assert "catalog.counting" in imported  # the check sees this checkout's imports
    heavy = [m for m in imported if any(m == h or m.startswith(f"{h}.") for h in HEAVY)]
    assert heavy == []
    out, imported = imported_by("--db", db_url, "count", "-d", "drawn", "-s", "train", "-l", "1")
    assert out == "3\n"
    assert not [m for m in imported if m.split(".")[0] in ("numpy", "PIL", "alembic")]
