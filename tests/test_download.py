"""Tests for catalog.sources.download, over real HTTP to servers started on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import DownloadError
from catalog.sources.download import (
    DownloadProgress,
    dataset_cache_dir,
    default_cache_dir,
    download_dataset,
    identify_local_file,
)
from catalog.sources.fingerprints import KNOWN_DATASETS, MNIST_FILES, KnownDataset, KnownFile

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

# --------------------------------------------------------------------------- servers


@dataclass
class Seen:
    """One request a test server answered."""

    path: str
    range: str | None
    status: int
    sent: int  # body bytes written


@dataclass
class Site:
    """What a test server serves, and what it saw."""

    files: dict[str, bytes]
    honour_range: bool = True  # False: answer 200 with the whole body, as if Range were unknown
    status: int | None = None  # answer every request with this error status
    truncate_at: int | None = None  # announce the full length, send this many bytes, hang up
    pace: float = 0.0  # seconds to wait before each 16 KiB of a body
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            header = self.headers.get("Range")
            body = site.files.get(name)
            if site.status is not None or body is None:
                status = site.status if site.status is not None else 404
                site.seen.append(Seen(self.path, header, status, 0))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, start, end = 200, 0, len(body)
            if header is not None and site.honour_range:
                match = RANGE.fullmatch(header)
                assert match is not None, header
                start = int(match.group(1))
                end = int(match.group(2)) + 1 if match.group(2) else len(body)
                if start >= len(body):
                    site.seen.append(Seen(self.path, header, 416, 0))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            payload = body[start:end]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
            self.end_headers()
            if site.truncate_at is not None:
                payload = payload[: site.truncate_at]
            # Record before writing: the client may act on the body (and the
            # test assert) before this thread runs again.
            site.seen.append(Seen(self.path, header, status, len(payload)))
            step = 16 * 1024 if site.pace else len(payload) or 1
            for start in range(0, len(payload), step):
                time.sleep(site.pace)
                self.wfile.write(payload[start : start + step])

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


Serve = Callable[[Site], str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a threaded HTTP server for a Site on a free port; return its base URL."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(site: Site) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        running.append((server, thread))
        site.url = f"http://127.0.0.1:{server.server_port}/files/"
        return site.url

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    """A URL on a port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/files/"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose server accepts connections but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/files/"


# --------------------------------------------------------------------------- a tiny dataset


@dataclass(frozen=True)
class Tiny:
    """A fake known dataset of two small gz files, patched into KNOWN_DATASETS."""

    files: tuple[KnownFile, ...]
    gz: dict[str, bytes]  # canonical gz bytes by name
    content: dict[str, bytes]  # decompressed bytes by name

    @property
    def big(self) -> KnownFile:
        return self.files[0]

    def recompressed(self) -> dict[str, bytes]:
        """Re-compressed copies: different gz bytes, same content."""
        return {n: gzip.compress(c, compresslevel=1, mtime=1) for n, c in self.content.items()}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Tiny:
    rng = random.Random(1234)
    content = {
        "big-idx1-ubyte.gz": rng.randbytes(300_000),  # several 64 KiB chunks
        "small-idx1-ubyte.gz": b"\x00\x00\x08\x01" + bytes(range(10)) * 10,
    }
    gz = {name: gzip.compress(data, mtime=0) for name, data in content.items()}
    files = tuple(
        KnownFile(
            "tiny",
            name,
            "train",
            "labels",
            len(gz[name]),
            _md5(gz[name]),
            _md5(data),
            hashlib.sha256(data).hexdigest(),
        )
        for name, data in content.items()
    )
    dataset = KnownDataset("tiny", "Tiny", ("http://127.0.0.1:9/never-used/",), files)
    monkeypatch.setitem(KNOWN_DATASETS, "tiny", dataset)
    return Tiny(files, gz, content)


def _assert_cached(tiny: Tiny, paths: list[Path], folder: Path) -> None:
    assert paths == [folder / "tiny" / known.name for known in tiny.files]
    for path, known in zip(paths, tiny.files, strict=True):
        assert identify_local_file(path) == known
    # Nothing else is left behind: no .part, no corrupt copy.
    assert sorted(p.name for p in (folder / "tiny").iterdir()) == sorted(tiny.gz)


# --------------------------------------------------------------------------- real MNIST


@pytest.mark.mnist
def test_download_real_mnist_files_verify_as_genuine(tmp_path: Path, serve: Serve) -> None:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    site = Site({p.name: p.read_bytes() for p in MNIST_DIR.glob("*.gz")})
    url = serve(site)

    paths = download_dataset("mnist", cache_dir=tmp_path, mirrors=[url])

    assert [p.name for p in paths] == [known.name for known in MNIST_FILES]
    for path, known in zip(paths, MNIST_FILES, strict=True):
        assert path.parent == tmp_path / "mnist"
        assert identify_local_file(path) == known
    assert len(site.seen) == 4
    site.seen.clear()
    assert download_dataset("mnist", cache_dir=tmp_path, mirrors=[url]) == paths
    assert site.seen == []


# --------------------------------------------------------------------------- mirrors


def test_downloads_every_file_from_a_good_mirror(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    site = Site(tiny.gz)
    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    _assert_cached(tiny, paths, tmp_path)
    assert [p.read_bytes() for p in paths] == [tiny.gz[k.name] for k in tiny.files]
    assert [s.path for s in site.seen] == [f"/files/{k.name}" for k in tiny.files]
    assert all(s.range is None and s.status == 200 for s in site.seen)


def test_uses_the_dataset_mirrors_by_default(
    tmp_path: Path, serve: Serve, tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = serve(Site(tiny.gz))
    monkeypatch.setitem(KNOWN_DATASETS, "tiny", KnownDataset("tiny", "Tiny", (url,), tiny.files))

    paths = download_dataset("tiny", cache_dir=tmp_path)

    _assert_cached(tiny, paths, tmp_path)


@pytest.mark.parametrize("status", [403, 404, 500])
def test_http_error_on_first_mirror_uses_the_next(
    tmp_path: Path, serve: Serve, tiny: Tiny, status: int
) -> None:
    bad, good = Site(tiny.gz, status=status), Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(bad), serve(good)])

    _assert_cached(tiny, paths, tmp_path)
    # The mirror that worked is tried first for the remaining files.
    assert [s.status for s in bad.seen] == [status]
    assert len(good.seen) == 2


def test_refused_connection_uses_the_next_mirror(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    paths = download_dataset(
        "tiny", cache_dir=tmp_path, mirrors=[_closed_port_url(), serve(Site(tiny.gz))]
    )

    _assert_cached(tiny, paths, tmp_path)


def test_timeout_uses_the_next_mirror(
    tmp_path: Path, serve: Serve, tiny: Tiny, silent_url: str
) -> None:
    paths = download_dataset(
        "tiny", cache_dir=tmp_path, mirrors=[silent_url, serve(Site(tiny.gz))], timeout=0.2
    )

    _assert_cached(tiny, paths, tmp_path)


def test_checksum_mismatch_uses_next_mirror_and_leaves_no_corrupt_file(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    corrupt = {name: data[:-20] + b"\xff" * 20 for name, data in tiny.gz.items()}
    bad, good = Site(corrupt), Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(bad), serve(good)])

    assert [p.read_bytes() for p in paths] == [tiny.gz[k.name] for k in tiny.files]
    assert len(bad.seen) == 1
    assert len(good.seen) == 2
    _assert_cached(tiny, paths, tmp_path)


def test_recompressed_copy_verifies_by_decompressed_md5(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    recompressed = tiny.recompressed()
    assert recompressed != tiny.gz

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(Site(recompressed))])

    assert [p.read_bytes() for p in paths] == [recompressed[k.name] for k in tiny.files]


def test_recompressed_copy_rejected_when_only_gz_md5_is_known(
    tmp_path: Path, serve: Serve, tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like fashion-mnist and kmnist, whose decompressed digests are not listed.
    files = tuple(KnownFile(k.dataset, k.name, k.split, k.role, None, k.gz_md5) for k in tiny.files)
    monkeypatch.setitem(KNOWN_DATASETS, "tiny", KnownDataset("tiny", "Tiny", (), files))
    url = serve(Site(tiny.recompressed()))

    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_dataset("tiny", cache_dir=tmp_path, mirrors=[url])
    assert list((tmp_path / "tiny").iterdir()) == []


def test_all_mirrors_failing_names_each_mirror_and_why(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    missing = serve(Site({}))
    forbidden = serve(Site(tiny.gz, status=403))
    corrupt = serve(Site(dict.fromkeys(tiny.gz, b"not gzip")))
    refused = _closed_port_url()
    big = tiny.big
    expected_start = (
        f"Could not download tiny file {big.name} into {tmp_path / 'tiny'}: "
        f"expected gz md5 {big.gz_md5} or decompressed md5 {big.md5}; every mirror failed: "
        f"{missing}{big.name} (HTTP 404 Not Found); "
        f"{forbidden}{big.name} (HTTP 403 Forbidden); "
        f"{corrupt}{big.name} (checksum mismatch, found gz md5 {_md5(b'not gzip')}, "
        "not a valid gzip file); "
        f"{refused}{big.name} ("
    )

    with pytest.raises(DownloadError, match=re.escape(expected_start)) as caught:
        download_dataset("tiny", cache_dir=tmp_path, mirrors=[missing, forbidden, corrupt, refused])

    message = str(caught.value)
    assert "\n" not in message
    assert re.search(r"\(.*[Cc]onnection refused.*\)\. Without the network: put the files", message)
    assert message.endswith("or ingest a folder that holds them: mnist-catalog ingest FOLDER")
    assert list((tmp_path / "tiny").iterdir()) == []


def test_non_http_mirror_is_reported(tmp_path: Path, tiny: Tiny) -> None:
    with pytest.raises(DownloadError, match=re.escape("(not an http:// or https:// URL)")):
        download_dataset("tiny", cache_dir=tmp_path, mirrors=["file:///tmp/"])


def test_unknown_dataset(tmp_path: Path) -> None:
    msg = (
        "Cannot download unknown dataset 'cifar10': expected one of "
        "emnist, fashion-mnist, k49, kmnist, mnist, qmnist"
    )
    with pytest.raises(DownloadError, match=re.escape(msg)):
        download_dataset("cifar10", cache_dir=tmp_path)


def test_no_mirrors(tmp_path: Path, tiny: Tiny) -> None:
    msg = "Cannot download tiny: expected at least one mirror URL, found none"
    with pytest.raises(DownloadError, match=re.escape(msg)):
        download_dataset("tiny", cache_dir=tmp_path, mirrors=[])


# --------------------------------------------------------------------------- resume


def _part(tmp_path: Path, known: KnownFile, data: bytes) -> Path:
    part = tmp_path / "tiny" / f"{known.name}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    return part


def test_partial_file_is_resumed_with_a_range_request(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    big = tiny.big
    body = tiny.gz[big.name]
    offset = 100_001
    part = _part(tmp_path, big, body[:offset])
    site = Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == body
    assert not part.exists()
    first = site.seen[0]
    assert (first.range, first.status, first.sent) == (f"bytes={offset}-", 206, len(body) - offset)
    assert site.seen[1].range is None  # no partial file for the other one


def test_server_ignoring_range_restarts_the_file(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    big = tiny.big
    body = tiny.gz[big.name]
    _part(tmp_path, big, body[:50_000])
    site = Site(tiny.gz, honour_range=False)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == body
    first = site.seen[0]
    assert (first.range, first.status, first.sent) == ("bytes=50000-", 200, len(body))
    assert [s.path for s in site.seen] == [f"/files/{k.name}" for k in tiny.files]


def test_prefix_from_another_mirror_is_refetched_whole(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    # A prefix of a re-compressed copy, completed by a mirror with other gz bytes,
    # verifies as neither: the file is fetched again from zero from the same mirror.
    big = tiny.big
    _part(tmp_path, big, tiny.recompressed()[big.name][:70_000])
    site = Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == tiny.gz[big.name]
    assert [(s.range, s.status) for s in site.seen[:2]] == [("bytes=70000-", 206), (None, 200)]


def test_complete_part_file_is_verified_and_kept(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    big = tiny.big
    _part(tmp_path, big, tiny.gz[big.name])
    site = Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == tiny.gz[big.name]
    assert (site.seen[0].status, site.seen[0].sent) == (416, 0)


def test_interrupted_download_resumes_on_the_next_call(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    big = tiny.big
    body = tiny.gz[big.name]
    dropping = serve(Site(tiny.gz, truncate_at=100_000))

    with pytest.raises(DownloadError, match=f"connection closed after 100000 of {len(body)}"):
        download_dataset("tiny", cache_dir=tmp_path, mirrors=[dropping])
    part = tmp_path / "tiny" / f"{big.name}.part"
    assert part.read_bytes() == body[:100_000]

    site = Site(tiny.gz)
    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == body
    assert (site.seen[0].range, site.seen[0].sent) == ("bytes=100000-", len(body) - 100_000)


# --------------------------------------------------------------------------- cache


def test_cached_files_are_not_requested_again(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    for name, data in tiny.gz.items():
        (folder / name).write_bytes(data)
    site = Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths == [folder / k.name for k in tiny.files]
    assert site.seen == []


def test_second_call_makes_no_request(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    site = Site(tiny.gz)
    url = serve(site)
    first = download_dataset("tiny", cache_dir=tmp_path, mirrors=[url])
    site.seen.clear()

    assert download_dataset("tiny", cache_dir=tmp_path, mirrors=[url]) == first
    assert site.seen == []


def test_corrupt_cached_file_is_downloaded_again(tmp_path: Path, serve: Serve, tiny: Tiny) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / tiny.big.name).write_bytes(b"garbage")
    site = Site(tiny.gz)

    paths = download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(site)])

    assert paths[0].read_bytes() == tiny.gz[tiny.big.name]
    assert len(site.seen) == 2


def test_cache_dir_from_environment(
    tmp_path: Path, serve: Serve, tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_CATALOG_CACHE", str(tmp_path / "env-cache"))

    paths = download_dataset("tiny", mirrors=[serve(Site(tiny.gz))])

    assert {p.parent for p in paths} == {tmp_path / "env-cache" / "tiny"}


def test_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_CATALOG_CACHE", str(tmp_path / "override"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "override"

    monkeypatch.delenv("MNIST_CATALOG_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "mnist-catalog"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored (XDG spec)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mnist-catalog"

    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mnist-catalog"
    assert dataset_cache_dir("kmnist") == tmp_path / "home" / ".cache" / "mnist-catalog" / "kmnist"


def test_unwritable_cache_is_a_download_error(tmp_path: Path, tiny: Tiny) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(DownloadError, match=re.escape(f"download cache in {blocker / 'tiny'}")):
        download_dataset("tiny", cache_dir=blocker, mirrors=["http://127.0.0.1:9/"])


# --------------------------------------------------------------------------- progress


def test_progress_reports_increasing_bytes_up_to_the_file_size(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    calls: list[tuple[str, int, int | None]] = []

    def progress(file_name: str, done: int, total: int | None) -> None:
        calls.append((file_name, done, total))

    callback: DownloadProgress = progress
    download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(Site(tiny.gz))], progress=callback)

    for known in tiny.files:
        size = len(tiny.gz[known.name])
        mine = [(done, total) for name, done, total in calls if name == known.name]
        dones = [done for done, _ in mine]
        assert dones == sorted(dones)
        assert dones[0] == 0
        assert dones[-1] == size
        assert {total for _, total in mine} == {size}
    assert len([c for c in calls if c[0] == tiny.big.name]) > 3  # reported per chunk

    calls.clear()
    download_dataset("tiny", cache_dir=tmp_path, mirrors=["http://127.0.0.1:9/"], progress=callback)
    assert calls == [(k.name, len(tiny.gz[k.name]), len(tiny.gz[k.name])) for k in tiny.files]


def test_progress_of_a_resumed_file_starts_at_the_prefix(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    big = tiny.big
    size = len(tiny.gz[big.name])
    _part(tmp_path, big, tiny.gz[big.name][:80_000])
    calls: list[tuple[int, int | None]] = []

    def progress(file_name: str, done: int, total: int | None) -> None:
        if file_name == big.name:
            calls.append((done, total))

    download_dataset("tiny", cache_dir=tmp_path, mirrors=[serve(Site(tiny.gz))], progress=progress)

    assert calls[0] == (80_000, size)
    assert calls[-1] == (size, size)


# --------------------------------------------------------------------------- identify


def test_identify_local_file(tmp_path: Path, tiny: Tiny) -> None:
    big = tiny.big
    genuine = tmp_path / "genuine.gz"
    genuine.write_bytes(tiny.gz[big.name])
    recompressed = tmp_path / "recompressed.gz"
    recompressed.write_bytes(tiny.recompressed()[big.name])
    plain = tmp_path / "plain-idx"
    plain.write_bytes(tiny.content[big.name])
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")

    assert identify_local_file(genuine) == big
    assert identify_local_file(recompressed) == big
    assert identify_local_file(plain) == big
    assert identify_local_file(junk) is None


# --------------------------------------------------------------------------- the CLI


def test_cli_ingest_mnist_downloads_then_ingests_genuine_mnist(
    tmp_path: Path, serve: Serve, db_url: str
) -> None:
    """The README's first command, with a mirror on 127.0.0.1 serving the real files."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    from typer.testing import CliRunner

    from catalog.cli import app

    site = Site({p.name: p.read_bytes() for p in MNIST_DIR.glob("*.gz")})
    url = serve(site)
    args = ["--db", db_url, "ingest", "mnist", "--mirror", url, "--cache", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["dataset"], report["counts"]) == ("mnist", {"test": 10_000, "train": 60_000})
    assert {f["genuine"] for f in report["files"]} == {f"mnist/{k.name}" for k in MNIST_FILES}
    assert len(site.seen) == 4
    again = CliRunner().invoke(app, args[:-1])
    assert again.stdout.startswith("Already in the catalog: mnist")
    assert len(site.seen) == 4  # served from the cache


# --------------------------------------------------------------------------- shared cache


def _download_after(start: Any, cache: Path, url: str, results: Any) -> None:
    start.wait(30)
    try:
        paths = download_dataset("tiny", cache_dir=cache, mirrors=[url])
        results.put([str(p) for p in paths])
    except DownloadError as exc:
        results.put(str(exc))


def test_two_processes_downloading_into_one_cache_take_turns(
    tmp_path: Path, serve: Serve, tiny: Tiny
) -> None:
    """Two processes (forked, so they see the patched dataset) download at once from
    a slow server: one fetches each file, the other waits for it and finds it cached.
    Sharing one ``.part`` would interleave their bytes and fail the checksum."""
    site = Site(tiny.gz, pace=0.01)
    url = serve(site)
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    procs = [
        context.Process(target=_download_after, args=(start, tmp_path, url, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    expected = [str(tmp_path / "tiny" / known.name) for known in tiny.files]
    assert outcomes == [expected, expected]
    _assert_cached(tiny, [Path(p) for p in expected], tmp_path)
    fetched = [seen.path.rsplit("/", 1)[-1] for seen in site.seen if seen.status == 200]
    assert sorted(fetched) == sorted(known.name for known in tiny.files)  # each file once
    assert not list((tmp_path / "tiny").glob("*.part"))


def test_a_known_name_never_reads_a_folder_of_that_name_and_says_so(
    tmp_path: Path, serve: Serve, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ingest mnist`` beside a folder named mnist (the old recipe's lossy JPEGs): the
    verified files are ingested, the folder is named and how to ingest it is said."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    from typer.testing import CliRunner

    from catalog.cli import app

    (tmp_path / "mnist" / "train").mkdir(parents=True)  # a decoy: would fail to ingest
    (tmp_path / "mnist" / "train" / "000000_5.jpg").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)
    site = Site({p.name: p.read_bytes() for p in MNIST_DIR.glob("*.gz")})
    cache = tmp_path / "cache"
    args = ["--db", db_url, "ingest", "mnist", "--mirror", serve(site), "--cache", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert f"Downloaded mnist into {cache / 'mnist'}" in result.stderr
    assert (
        "Note: the folder ./mnist here was not read: `mnist` names the known dataset; "
        "to ingest the folder, run `mnist-catalog ingest ./mnist`"
    ) in result.stderr
    assert result.stdout.startswith("Ingested 70,000 images into mnist")
    again = CliRunner().invoke(app, args)
    assert f"Using the verified mnist files in {cache / 'mnist'}" in again.stderr
    folder = CliRunner().invoke(app, ["--db", db_url, "ingest", "./mnist", "-d", "old"])
    assert folder.exit_code == 1  # the folder itself was read this time: its bad file named
    assert "000000_5.jpg" in folder.stderr


def test_offline_ingest_of_a_known_name_says_what_to_do(tmp_path: Path, db_url: str) -> None:
    from typer.testing import CliRunner

    from catalog.cli import app

    dead = "http://127.0.0.1:9/"  # the discard port: nothing listens
    args = ["--db", db_url, "ingest", "mnist", "--mirror", dead, "--cache", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: Could not download mnist file train-images-idx3-ubyte.gz")
    assert (
        f"Without the network: put the files train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz "
        f"in {tmp_path / 'mnist'} (they are verified before use), or pass --mirror URL"
    ) in line
