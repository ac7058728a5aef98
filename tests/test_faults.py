"""Faults: SIGKILL during ingest and export, a full disk, a folder we may not write.

The kill tests run the real command line in a subprocess (``tests/scripts/run_cli.py``:
it imports, says ``ready``, and runs when told to) and send SIGKILL to its whole
process group at moments spread over the measured length of the command's work,
drawn with a fixed seed. After each kill the catalog and the export folder must be
in a state that a re-run completes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import clients
import numpy as np
import pytest
from builders import random_digits, write_idx_pair
from PIL import Image as PILImage
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from catalog import Catalog
from catalog.cli import app
from catalog.db.engine import session_scope
from catalog.db.models.exports import ExportedFile
from catalog.db.models.images import Dataset, Image, Source
from catalog.export.atomic import TEMP_MARK
from catalog.export.encoders import encode

SEED = 20240611
#: Images in the generated source: 5,000 train and 1,000 test, two export chunks.
TRAIN, TEST = 5000, 1000
SOURCE_COUNTS = {"test": TEST, "train": TRAIN}

runner = CliRunner()


# --- helpers ------------------------------------------------------------------------


def make_source(folder: Path) -> Path:
    pixels, labels = random_digits(TRAIN + TEST, seed=SEED)
    write_idx_pair(folder, "train", pixels[:TRAIN], labels[:TRAIN])
    write_idx_pair(folder, "t10k", pixels[TRAIN:], labels[TRAIN:])
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated IDX source of 6,000 images (train 5,000, test 1,000)."""
    return make_source(tmp_path_factory.mktemp("source"))


def spawn(db_url: str, *args: str) -> subprocess.Popen[str]:
    """The CLI in a process group of its own (killed with its workers); see :func:`go`."""
    return clients.spawn(db_url, *args, new_session=True)


def go(proc: subprocess.Popen[str]) -> float:
    """Wait until ``proc`` is imported, let it run, and return when it started."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "ready\n", proc.communicate()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return time.monotonic()


def run_to_end(db_url: str, *args: str) -> float:
    """Run the CLI to completion; return how long its work took (after imports)."""
    proc = spawn(db_url, *args)
    started = go(proc)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert err == "", err
    return took


def _live_members(group: int) -> list[int]:
    """Processes of ``group`` that are not yet zombies."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def kill_at(proc: subprocess.Popen[str], started: float, delay: float) -> bool:
    """SIGKILL ``proc``'s process group ``delay`` seconds after it ``started``.

    Returns True when the kill landed while the command was still running.
    Waits until every process of the group (export workers too) is dead.
    """
    time.sleep(max(0.0, started + delay - time.monotonic()))
    with suppress(ProcessLookupError):  # the group is already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while _live_members(proc.pid):
        assert time.monotonic() < deadline, "processes survived SIGKILL"
        time.sleep(0.01)
    return proc.returncode == -signal.SIGKILL


def kill_delays(duration: float, n: int, seed: int) -> list[float]:
    """``n`` moments in ``[0, duration)``, one at random in each of ``n`` equal slices."""
    rng = random.Random(seed)
    return [(i + rng.random()) * duration / n for i in range(n)]


def integrity(backend: str, db_url: str) -> None:
    """SQLite's own check of the file (and of foreign keys) must be clean."""
    if backend != "sqlite":
        return
    with sqlite3.connect(db_url) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    connection.close()


def split_counts(catalog: Catalog) -> tuple[int, dict[str, int], int]:
    """(datasets, images per split, sources) in ``catalog``."""
    with session_scope(catalog.engine) as session:
        datasets = session.scalar(select(func.count()).select_from(Dataset)) or 0
        query = select(Image.split, func.count()).group_by(Image.split)
        counts = dict(session.execute(query).all())
        sources = session.scalar(select(func.count()).select_from(Source)) or 0
    return datasets, counts, sources


def expected_files(catalog: Catalog) -> dict[str, bytes]:
    """Classic-layout relative path -> the PNG of the catalog's pixels for that image.

    Each PNG is checked to decode to the pixels here, once, so a file that equals
    it byte for byte decodes to the catalog's pixels too.
    """
    pixels, _ = catalog.select().arrays()
    expected = {}
    for row, image in zip(catalog.select().rows(), pixels, strict=True):
        data = encode(image, "png")
        with PILImage.open(io.BytesIO(data)) as decoded:
            assert np.array_equal(np.asarray(decoded), image)
        expected[f"{row.split}/{row.index:06d}_{row.label}.png"] = data
    return expected


def files_on_disk(out: Path) -> dict[str, bytes]:
    """The image files at final names under ``out``: relative path -> bytes."""
    if not out.exists():
        return {}
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*.png")
        if TEMP_MARK not in p.name
    }


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if TEMP_MARK in p.name]


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {relative: hashlib.sha256(data).hexdigest() for relative, data in files.items()}


def recorded_files(db_url: str, out: Path) -> dict[str, str]:
    """``exported_files`` rows under ``out``: relative path -> recorded sha256."""
    prefix = f"{out.resolve()}/"
    with Catalog.open(db_url) as catalog, session_scope(catalog.engine) as session:
        rows = session.execute(
            select(ExportedFile.path, ExportedFile.sha256).where(
                ExportedFile.path.startswith(prefix)
            )
        )
        return {path.removeprefix(prefix): digest for path, digest in rows}


def one_line_error(err: str) -> str:
    assert err.startswith("Error: "), err
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- SIGKILL during ingest ----------------------------------------------------------


@pytest.mark.slow
def test_sigkill_during_ingest_leaves_all_or_nothing(
    backend: str, db_url: str, source: Path
) -> None:
    """Kill ``mnist-catalog ingest`` at 20 moments (6 on PostgreSQL) spread over its run.

    Each time the catalog holds all 6,000 images (and its 4 source files) or none,
    SQLite's integrity check is ``ok``, and a normal ingest then succeeds.
    """
    n = 20 if backend == "sqlite" else 6
    Catalog.open(db_url).close()  # migrated up front: the kills land in the ingest
    ingest = ("ingest", str(source), "--dataset", "gen")
    duration = run_to_end(db_url, *ingest)
    outcomes: list[tuple[bool, str]] = []
    proc = spawn(db_url, *ingest)
    for k, delay in enumerate([None, *kill_delays(duration, n, SEED)]):
        if delay is not None:
            killed = kill_at(proc, go(proc), delay)
            if k < n:
                proc = spawn(db_url, *ingest)  # imports while this round is checked
        integrity(backend, db_url)
        with Catalog.open(db_url) as catalog:
            state = split_counts(catalog)
            assert state in ((0, {}, 0), (1, SOURCE_COUNTS, 4)), (delay, state)
            if delay is None:  # the uninterrupted run that measured the duration
                assert state[0] == 1
            else:
                outcomes.append((killed, "none" if state[0] == 0 else "all"))
                result = catalog.ingest(source, dataset="gen")
                assert result.already_present == (state[0] == 1)
                assert split_counts(catalog) == (1, SOURCE_COUNTS, 4)
                integrity(backend, db_url)
            with session_scope(catalog.engine, write=True) as session:
                session.execute(delete(Dataset))  # empty again for the next round
    # The kills did land mid-ingest: most found it running and undid its work.
    assert sum(killed for killed, _ in outcomes) >= n // 2, outcomes
    assert "none" in {state for _, state in outcomes}, outcomes


# --- SIGKILL during export ----------------------------------------------------------


@pytest.fixture
def gen_catalog(db_url: str, source: Path) -> Iterator[Catalog]:
    with Catalog.open(db_url) as catalog:
        catalog.ingest(source, dataset="gen")
        yield catalog


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_sigkill_during_export_then_rerun_completes(
    backend: str, db_url: str, gen_catalog: Catalog, tmp_path: Path, jobs: int
) -> None:
    """Kill ``mnist-catalog export --jobs N`` and its workers at 3 moments of its run
    (2 on PostgreSQL).

    After each kill every image at a final name is whole (byte for byte the PNG of
    the catalog's pixels) and every recorded file is on disk as recorded; re-running
    the export writes the rest, records every file, and leaves no temporary files.
    """
    n = 3 if backend == "sqlite" else 2
    expected = expected_files(gen_catalog)
    expected_digests = digests(expected)
    assert len(expected) == TRAIN + TEST
    duration = run_to_end(db_url, "export", str(tmp_path / "timing"), "--jobs", str(jobs))
    killed = []
    proc = spawn(db_url, "export", str(tmp_path / "out0"), "--jobs", str(jobs))
    for k, delay in enumerate(kill_delays(duration, n, SEED + jobs)):
        out = tmp_path / f"out{k}"
        killed.append(kill_at(proc, go(proc), delay))
        if k + 1 < n:  # imports while this round is checked
            proc = spawn(db_url, "export", str(tmp_path / f"out{k + 1}"), "--jobs", str(jobs))
        integrity(backend, db_url)
        on_disk = files_on_disk(out)
        assert {name: expected[name] for name in on_disk} == on_disk
        records, on_disk_digests = recorded_files(db_url, out), digests(on_disk)
        assert {name: on_disk_digests.get(name) for name in records} == records

        result = gen_catalog.select().export(out, jobs=jobs)
        assert result.written + result.skipped == result.count == len(expected)
        assert files_on_disk(out) == expected
        assert recorded_files(db_url, out) == expected_digests
        assert temp_files(out) == []
        assert len((out / "manifest.csv").read_text().splitlines()) == len(expected) + 1
    assert killed[0], killed  # the first kill, early in the run, found it working


# --- a full disk ----------------------------------------------------------------------


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (skips when mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_export_is_one_line_error_and_records_only_written_files(
    db_url: str, gen_catalog: Catalog, tmp_path: Path
) -> None:
    """A real full disk: export 6,000 images into a 256 KiB tmpfs (about 60 files fit).

    The CLI exits 1 with ``Error: ...No space left on device`` naming the folder, and
    the catalog records exactly the files that are on disk, no temporary files left.
    """
    with small_tmpfs(tmp_path / "small", "256k") as small:
        out = small / "out"
        proc = subprocess.run(
            ["mnist-catalog", "--db", db_url, "export", str(out), "--jobs", "1"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        err = one_line_error(proc.stderr)
        assert "No space left on device" in err
        assert str(out) in err
        on_disk = files_on_disk(out)
        assert 0 < len(on_disk) < TRAIN + TEST
        assert recorded_files(db_url, out) == digests(on_disk)
        assert temp_files(out) == []


def test_disk_full_at_the_manifest_is_one_line_error(
    db_url: str, gen_catalog: Catalog, tmp_path: Path
) -> None:
    """A real full disk once the images are written: a tmpfs filled up to room for
    exactly 10 files takes the 10 images of ``--limit 10``, and not the manifest.

    The CLI exits 1 naming the export folder; the 10 images are on disk and
    recorded, and no manifest (or temporary list) is left half-written.
    """
    with small_tmpfs(tmp_path / "small", "256k") as small:
        out = small / "out"
        (out / "test").mkdir(parents=True)
        stat = os.statvfs(small)
        (small / "filler").write_bytes(b"\0" * ((stat.f_bavail - 10) * stat.f_frsize))
        proc = subprocess.run(
            ["mnist-catalog", "--db", db_url, "export", str(out), "--limit", "10", "--jobs", "1"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        assert one_line_error(proc.stderr) == (
            f"Error: Cannot write the lists into export folder {out}: No space left on device\n"
        )
        on_disk = files_on_disk(out)
        assert len(on_disk) == 10
        assert recorded_files(db_url, out) == digests(on_disk)
        assert sorted(p.name for p in out.iterdir()) == ["test"]


def test_enospc_midway_is_one_line_error_and_records_only_written_files(
    db_url: str, gen_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulated full disk: ``os.write`` fails with ENOSPC after 700 images (jobs=1).

    The failure comes in the middle of the second task of 512 images (the later
    tasks of the chunk fail at their first image); the CLI says so in one line,
    naming the folder, and the catalog records exactly the 700 files on disk.
    """
    real_write = os.write
    calls = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 700:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    out = tmp_path / "out"
    result = runner.invoke(app, ["--db", db_url, "export", str(out), "--jobs", "1"])
    monkeypatch.undo()
    assert result.exit_code == 1
    err = one_line_error(result.stderr)
    assert f"into {out / 'test'}: No space left on device" in err
    on_disk = files_on_disk(out)
    assert len(on_disk) == 700
    assert recorded_files(db_url, out) == digests(on_disk)
    assert temp_files(out) == []


# --- a folder we may not write ----------------------------------------------------------


@contextmanager
def unwritable(folder: Path) -> Iterator[str]:
    """Make ``folder`` unwritable even for root; yield the mechanism used.

    ``chattr +i`` (immutable: no entry may be added, whoever asks) where the file
    system supports it, else a read-only tmpfs mounted over it; skips if neither works.
    """
    folder.mkdir(parents=True, exist_ok=True)
    chattr = shutil.which("chattr")
    if (
        chattr
        and subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False).returncode
        == 0
    ):
        try:
            yield "chattr +i"
        finally:
            subprocess.run([chattr, "-i", str(folder)], check=True)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"neither chattr +i nor a read-only mount works here: {mounted.stderr}")
    try:
        yield "read-only tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def run_export(db_url: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mnist-catalog", "--db", db_url, "export", str(out), "--jobs", "1"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_permission_denied_on_the_export_folder_is_one_line_error(
    db_url: str, gen_catalog: Catalog, tmp_path: Path
) -> None:
    """Root may not write into the export folder (``chattr +i``, or a read-only mount).

    Exit 1 with ``Error: Cannot write into export folder OUT: permission denied``;
    nothing is written or recorded.
    """
    out = tmp_path / "out"
    with unwritable(out):
        proc = run_export(db_url, out)
        assert proc.returncode == 1
        assert one_line_error(proc.stderr) == (
            f"Error: Cannot write into export folder {out}: permission denied\n"
        )
        assert list(out.iterdir()) == []
    assert recorded_files(db_url, out) == {}


def test_permission_denied_midway_records_only_written_files(
    db_url: str, gen_catalog: Catalog, tmp_path: Path
) -> None:
    """The export folder is writable but its ``train`` folder is not (``chattr +i``,
    or a read-only mount): the test split is written and recorded, then the CLI
    exits 1 naming the ``train`` folder, and the records match the files on disk."""
    out = tmp_path / "out"
    with unwritable(out / "train") as mechanism:
        proc = run_export(db_url, out)
        assert proc.returncode == 1
        err = one_line_error(proc.stderr)
        assert f"into {out / 'train'}: " in err
        assert ("Operation not permitted" if mechanism == "chattr +i" else "Read-only") in err
        on_disk = files_on_disk(out)
        assert {path.split("/")[0] for path in on_disk} == {"test"}
        assert len(on_disk) == TEST
        assert recorded_files(db_url, out) == digests(on_disk)
