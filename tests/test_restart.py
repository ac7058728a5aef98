"""The PostgreSQL server restarts while an export runs: one line, and the next command works.

The restart must not disturb other tests that use the shared server, so this
test starts a PostgreSQL cluster of its own (``initdb`` in a temporary folder,
its own port, run as the ``postgres`` user) and restarts that one. It skips
where the server binaries or that user are missing. Marked ``pg_restart``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import random_digits, write_idx_pair
from clients import finish, one_line_error, start
from sqlalchemy import select

from catalog import Catalog
from catalog.db.engine import session_scope
from catalog.db.models.exports import ExportedFile

pytestmark = pytest.mark.pg_restart

IMAGES = 20_000


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster run by pg_ctl as the ``postgres`` user."""

    def __init__(self, root: Path) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no postgres user to run a private cluster as")
        if os.geteuid() not in (0, user.pw_uid):
            pytest.skip("a private cluster needs root or the postgres user")
        self.bin_dir = bin_dir
        self.data = root / "data"
        self.data.mkdir()
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(self.data, user.pw_uid, user.pw_gid)
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-l", str(self.data / "log"),
            "-o", options, *extra,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: its root is private to us, and the server runs
    # as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="mnist-catalog-pg-"))
    try:
        running = Cluster(root)
        running.pg_ctl("start")
        try:
            yield running
        finally:
            running.pg_ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_server_restart_during_an_export_is_one_line_and_the_next_command_works(
    cluster: Cluster, tmp_path: Path
) -> None:
    pixels, labels = random_digits(IMAGES, seed=3)
    source = tmp_path / "source"
    source.mkdir()
    write_idx_pair(source, "train", pixels, labels)
    with Catalog.open(cluster.url) as catalog:
        catalog.ingest(source, dataset="gen")
    out = tmp_path / "out"
    proc = start(cluster.url, "export", str(out), "-j", "1")
    deadline = time.monotonic() + 60
    while not any(out.rglob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.02)
    cluster.pg_ctl("restart", "-m", "fast")
    broken = finish(proc)
    written = len(list(out.rglob("*.png")))
    assert 0 < written < IMAGES, "the restart must land while the export runs"
    assert broken.out == ""
    assert one_line_error(
        broken,
        "Lost the connection to the catalog postgresql+psycopg://postgres@127.0.0.1:",
        "run the command again",
    ), broken.err
    rerun = finish(start(cluster.url, "export", str(out), "-j", "1"))
    assert (rerun.code, rerun.err) == (0, "")
    assert rerun.out.startswith(f"Exported {IMAGES:,} images to {out}")
    with Catalog.open(cluster.url) as catalog, session_scope(catalog.engine) as session:
        recorded = set(session.scalars(select(ExportedFile.path)))
    assert recorded == {str(p) for p in out.rglob("*.png")}
    assert len(recorded) == IMAGES
