"""Exported files are on disk before the catalog records them (fsync of file and
folder), unless ``--no-fsync`` says speed matters more.

A power cut cannot be staged in a test; what is tested is the order: every
record of N files comes after at least N file flushes and a flush of their
folder, counted by wrapping ``os.fsync`` in this process (``jobs=1`` writes here).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from builders import random_digits, write_idx_pair

from catalog import Catalog
from catalog.export.recorder import FileRecorder
from catalog.export.staged import StagedWriter


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


# --- the staged writer: flushed together, named after --------------------------------


@contextmanager
def opened(folder: Path) -> Iterator[int]:
    """``folder``, created, as an open directory descriptor."""
    folder.mkdir(exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def test_each_name_appears_only_after_its_bytes_are_flushed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every link or rename that names a file comes after an fsync of that file's
    descriptor; the folder is flushed after the names; the fsyncs ran in several
    threads at once (so the file system can share its commits)."""
    flushed: set[tuple[int, int]] = set()  # (device, inode) of flushed files
    threads: set[int] = set()
    order: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            order.append("folder")
        else:
            threads.add(threading.get_ident())
            flushed.add((info.st_dev, info.st_ino))
        real_fsync(fd)

    def link(src: str, dst: str, **kw: Any) -> None:
        info = os.stat(src)
        assert (info.st_dev, info.st_ino) in flushed, f"{dst} named before its bytes were flushed"
        order.append("name")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    folder = tmp_path / "out"
    writer = StagedWriter(overwrite=False)
    with opened(folder) as fd:
        for i in range(300):
            assert writer.write(i, fd, f"{i}.bin", str(i).encode() * 50) is None
        writer.flush()
        writer.close()
    assert writer.outcomes == dict.fromkeys(range(300), "written")
    assert {p.name for p in folder.iterdir()} == {f"{i}.bin" for i in range(300)}
    assert (folder / "7.bin").read_bytes() == b"7" * 50
    assert len(flushed) == 300
    assert len(threads) > 1  # flushed side by side, not one after another
    assert order[-1] == "folder"
    assert order.count("name") == 300


def test_a_rerun_reads_what_is_there_and_flushes_nothing(
    digits: Catalog, events: list[tuple[str, int]], tmp_path: Path
) -> None:
    """Files already in place (an interrupted export's) are compared, not rewritten
    and flushed again: the re-run's only flushes are none at all."""
    first = digits.select().export(tmp_path / "out", jobs=1)
    assert first.written == 1200
    events.clear()
    again = digits.select().export(tmp_path / "out", jobs=1)
    assert (again.written, again.skipped) == (0, 1200)
    assert [kind for kind, _ in events if kind == "file"] == []
    digits.close()


def test_staged_files_that_are_dropped_never_appear(tmp_path: Path) -> None:
    """Closing a writer with files still staged (an error stopped the task) leaves
    no file at those names and no temporary files."""
    folder = tmp_path / "out"
    writer = StagedWriter(overwrite=False)
    with opened(folder) as fd:
        for i in range(5):
            writer.write(i, fd, f"{i}.bin", b"x")
        writer.close()
    assert writer.outcomes == {}
    assert list(folder.iterdir()) == []


def test_different_bytes_at_the_name_are_a_conflict_unless_overwriting(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"old")
    (folder / "b.bin").write_bytes(b"same")
    with opened(folder) as fd:
        keep = StagedWriter(overwrite=False)
        assert keep.write(0, fd, "a.bin", b"new") == "conflict"
        assert keep.write(1, fd, "b.bin", b"same") == "skipped"
        keep.close()
        replace = StagedWriter(overwrite=True)
        assert replace.write(0, fd, "a.bin", b"new") is None
        replace.flush()
        replace.close()
    assert replace.outcomes == {0: "written"}
    assert (folder / "a.bin").read_bytes() == b"new"
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.bin"]
