"""Exported files are on disk before the catalog records them (fsync of file and
folder), unless ``--no-fsync`` says speed matters more.

A power cut cannot be staged in a test; what is tested is the order: every
record of N files comes after at least N file flushes and a flush of their
folder, counted by wrapping ``os.fsync`` in this process (``jobs=1`` writes here).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from builders import random_digits, write_idx_pair

from catalog import Catalog
from catalog.export.recorder import FileRecorder


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """("file" | "folder", 1) per fsync and ("record", n) per recorded chunk, in order."""
    log: list[tuple[str, int]] = []
    real_fsync = os.fsync
    real_record = FileRecorder.record

    def fsync(fd: int) -> None:
        log.append(("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file", 1))
        real_fsync(fd)

    def record(self: FileRecorder, files: list[Any]) -> tuple[int, int]:
        log.append(("record", sum(1 for f in files if f[9] == "written")))  # the status
        return real_record(self, files)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(FileRecorder, "record", record)
    return log


@pytest.fixture
def digits(tmp_path: Path) -> Catalog:
    pixels, labels = random_digits(1200, seed=4)
    write_idx_pair(tmp_path / "src", "train", pixels, labels)
    catalog = Catalog.open(tmp_path / "c.db")
    catalog.ingest(tmp_path / "src", dataset="digits")
    return catalog


def test_files_and_folders_are_flushed_before_they_are_recorded(
    digits: Catalog, events: list[tuple[str, int]], tmp_path: Path
) -> None:
    result = digits.select().export(tmp_path / "out", jobs=1, layout="by-label")
    assert result.written == 1200
    files = folders = recorded = 0
    chunks = 0
    for kind, n in events:
        if kind == "file":
            files += 1
        elif kind == "folder":
            folders += 1
        else:
            recorded += n
            chunks += 1
            assert files >= recorded, events  # every recorded file was flushed first
            assert folders >= 1
    assert (recorded, files) == (1200, 1200)
    assert chunks >= 1
    assert folders >= 10  # the ten label folders' entries, and the files' folders
    digits.close()


def test_no_fsync_flushes_nothing(
    digits: Catalog, events: list[tuple[str, int]], tmp_path: Path
) -> None:
    result = digits.select().export(tmp_path / "out", jobs=1, fsync=False)
    assert result.written == 1200
    assert [kind for kind, _ in events if kind != "record"] == []
    digits.close()
