"""Fetch the canonical gz files of a known dataset into a local cache, verified.

Files are streamed to ``<file>.part`` in the cache folder, resumed with an HTTP
``Range`` request when a partial file is already there, verified against the
digests in :mod:`catalog.sources.fingerprints` and only then moved into place, so a
file under its final name is always one that verified. Processes sharing a
cache take turns per file (:func:`catalog.sources.filelock.exclusive` on ``<file>.lock``).
Only the standard library's :mod:`urllib` is used.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.error import HTTPError, URLError
from urllib.request import OpenerDirector, Request, build_opener

from catalog.errors import DownloadError
from catalog.sources.filelock import exclusive
from catalog.sources.fingerprints import KNOWN_DATASETS, KnownFile, identify_file

#: Bytes read from the network or from disk at a time.
CHUNK_SIZE = 64 * 1024

#: Seconds to wait for a connection or for the next chunk before giving up on a mirror.
DEFAULT_TIMEOUT = 30.0

#: Stop decompressing a file for verification past this many bytes (MNIST's
#: largest file is 47 MB decompressed); protects against gzip bombs.
MAX_DECOMPRESSED_SIZE = 1 << 30

#: Environment variable that overrides the cache root.
CACHE_ENV = "MNIST_CATALOG_CACHE"

USER_AGENT = "mnist-catalog (Python urllib)"

_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class DownloadProgress(Protocol):
    """Called as bytes of a file arrive.

    Parameters
    ----------
    file_name
        Canonical name of the file, e.g. ``"train-images-idx3-ubyte.gz"``.
    done
        Bytes of that file on disk so far, counting a resumed prefix. It never
        decreases, except that it goes back to 0 when a download restarts from the
        beginning (another mirror, or a server that ignored the ``Range`` request).
    total
        Size of the file in bytes when the server said so, else ``None``.

    A file already in the cache is reported once, with ``done == total``.
    """

    def __call__(self, file_name: str, done: int, total: int | None) -> None: ...


class _MirrorFailed(Exception):
    """One mirror did not deliver one file; the message is the reason."""


def default_cache_dir() -> Path:
    """The cache root (not created): ``$MNIST_CATALOG_CACHE``, else ``mnist-catalog`` in
    ``$XDG_CACHE_HOME`` (when absolute) or ``~/.cache``; each dataset has a subfolder."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "mnist-catalog"


def dataset_cache_dir(name: str, cache_dir: Path | None = None) -> Path:
    """The folder of dataset ``name``'s files, ``<root>/<name>`` (the root: ``cache_dir``,
    else :func:`default_cache_dir`; the datasets share file names).

    >>> dataset_cache_dir("mnist", Path("/data")).as_posix()
    '/data/mnist'
    """
    root = cache_dir if cache_dir is not None else default_cache_dir()
    return root / name


def file_digests(path: Path) -> tuple[str, str | None, str | None]:
    """Return the md5 of ``path``'s bytes and the md5 and sha256 of its decompressed content.

    The decompressed digests are ``None`` when ``path`` is not a valid gzip file
    (or decompresses to more than :data:`MAX_DECOMPRESSED_SIZE` bytes).
    Reads in chunks, so memory use does not grow with the file.
    """
    raw_md5 = _raw_md5(path)
    content = _decompressed_digests(path)
    if content is None:
        return raw_md5, None, None
    return raw_md5, content[0], content[1]


def _raw_md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)  # the digest the MNIST site publishes
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            md5.update(chunk)
    return md5.hexdigest()


def _decompressed_digests(path: Path) -> tuple[str, str] | None:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                size += len(chunk)
                if size > MAX_DECOMPRESSED_SIZE:
                    return None
                md5.update(chunk)
                sha256.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return md5.hexdigest(), sha256.hexdigest()


def identify_local_file(path: Path) -> KnownFile | None:
    """Return the known genuine file that ``path`` is, or ``None``.

    ``path`` matches when the md5 of its bytes is a known ``gz_md5``, or when its
    content (decompressed if it is gzip, as is otherwise) has a known ``md5``.
    A re-compressed copy of a genuine file is therefore recognised.

    Parameters
    ----------
    path
        A local file, gzip-compressed or not.

    Returns
    -------
    KnownFile or None
        The matching entry of :data:`catalog.sources.fingerprints.KNOWN_DATASETS`.
    """
    raw_md5, content_md5, _ = file_digests(path)
    return identify_file(md5=content_md5 or raw_md5, gz_md5=raw_md5)


def _mismatch(path: Path, known: KnownFile) -> str | None:
    """Return ``None`` when ``path`` is ``known``, else what was found instead."""
    raw_md5 = _raw_md5(path)
    if raw_md5 == known.gz_md5:
        return None
    found = f"gz md5 {raw_md5}"
    if known.md5 is None and known.sha256 is None:
        return found
    content = _decompressed_digests(path)
    if content is None:
        return f"{found}, not a valid gzip file"
    md5, sha256 = content
    if md5 == known.md5 or (known.md5 is None and sha256 == known.sha256):
        return None
    return f"{found}, decompressed md5 {md5}"


def _expected(known: KnownFile) -> str:
    expected = f"gz md5 {known.gz_md5}"
    if known.md5 is not None:
        expected += f" or decompressed md5 {known.md5}"
    elif known.sha256 is not None:
        expected += f" or decompressed sha256 {known.sha256}"
    return expected


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, URLError):
        text = str(exc.reason)
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


def _fetch(
    opener: OpenerDirector,
    url: str,
    part: Path,
    known: KnownFile,
    progress: DownloadProgress | None,
    timeout: float,
) -> int:
    """Download ``url`` into ``part``, resuming what is there; return the resumed offset.

    Network and protocol failures raise :class:`_MirrorFailed`; a partial
    ``part`` is left for a later resume. Local write errors raise ``OSError``.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = opener.open(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing past ``offset``: the part may already be complete; let the
            # caller verify it.
            if progress is not None:
                progress(known.name, offset, offset)
            return offset
        raise _MirrorFailed(_reason(exc)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise _MirrorFailed(_reason(exc)) from None

    with response:
        total: int | None = None
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                found = response.headers.get("Content-Range")
                msg = f"asked for bytes {offset}- but the server sent Content-Range {found}"
                raise _MirrorFailed(msg)
            if match.group(3) != "*":
                total = int(match.group(3))
            mode = "ab"
        else:
            # 200: the server ignored ``Range`` (or none was sent); start over.
            offset = 0
            mode = "wb"
        if total is None and length is not None and length.isdigit():
            total = offset + int(length)

        done = offset
        with part.open(mode) as out:
            if progress is not None:
                progress(known.name, done, total)
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _MirrorFailed(_reason(exc)) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(known.name, done, total)
    if total is not None and done < total:
        msg = f"connection closed after {done} of {total} bytes"
        raise _MirrorFailed(msg)
    return offset


def _download_file(
    opener: OpenerDirector,
    known: KnownFile,
    target: Path,
    mirrors: Sequence[str],
    progress: DownloadProgress | None,
    timeout: float,
) -> str:
    """Put a verified ``known`` at ``target``; return the mirror that delivered it."""
    part = target.with_name(target.name + ".part")
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += known.name
        try:
            if not url.startswith(("http://", "https://")):
                msg = "not an http:// or https:// URL"
                raise _MirrorFailed(msg)
            resumed = _fetch(opener, url, part, known, progress, timeout)
            found = _mismatch(part, known)
            if found is not None and resumed:
                # The prefix may have come from a mirror whose gz bytes differ
                # (mirrors re-compress): fetch the whole file from this mirror.
                part.unlink()
                _fetch(opener, url, part, known, progress, timeout)
                found = _mismatch(part, known)
            if found is not None:
                part.unlink()
                msg = f"checksum mismatch, found {found}"
                raise _MirrorFailed(msg)
        except _MirrorFailed as exc:
            failures.append(f"{url} ({exc})")
            continue
        os.replace(part, target)
        return mirror
    msg = (
        f"Could not download {known.dataset} file {known.name} into {target.parent}: "
        f"expected {_expected(known)}; every mirror failed: {'; '.join(failures)}. "
        f"Without the network: put the files {', '.join(_names(known.dataset))} in "
        f"{target.parent} (they are verified before use), or pass --mirror URL of a server "
        f"that has them, or ingest a folder that holds them: mnist-catalog ingest FOLDER"
    )
    raise DownloadError(msg)


def _names(dataset: str) -> list[str]:
    known = KNOWN_DATASETS.get(dataset)
    return [file.name for file in known.files] if known is not None else []


def download_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: DownloadProgress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Path]:
    """Fetch the canonical gz files of a known dataset into the cache; return their paths.

    For each file, a copy already in the cache that verifies is kept and not
    downloaded again. Otherwise mirrors are tried in order; after a mirror has
    delivered a file it is tried first for the remaining files. A mirror fails on
    a connection error, an HTTP error, a timeout or a checksum mismatch, and the
    next one is tried. A file verifies when the md5 of its gz bytes is the known
    ``gz_md5``, or the md5 of its decompressed content is the known ``md5``
    (mirrors re-compress).

    Bytes go to ``<file>.part``, moved into place with :func:`os.replace` once
    verified; an interrupted ``.part`` is resumed with ``Range: bytes=N-`` (or
    restarted if the server sends the whole file). A file failing verification is deleted.

    Parameters
    ----------
    name
        A key of :data:`catalog.sources.fingerprints.KNOWN_DATASETS`: ``"mnist"``,
        ``"fashion-mnist"`` or ``"kmnist"``.
    cache_dir
        Cache root; files go to ``cache_dir / name``. Defaults to
        :func:`default_cache_dir` (``$MNIST_CATALOG_CACHE``, else
        ``$XDG_CACHE_HOME/mnist-catalog`` or ``~/.cache/mnist-catalog``).
    mirrors
        Base URLs to try in order instead of the dataset's own mirrors; each file
        is fetched from ``<mirror>/<file name>``.
    progress
        Called as bytes arrive, see :class:`DownloadProgress`.
    timeout
        Seconds to wait for a connection or the next chunk before a mirror fails.

    Returns
    -------
    list of Path
        The verified files, in the order of the dataset's ``files``.

    Raises
    ------
    DownloadError
        When the dataset is unknown, the cache folder cannot be written, or every
        mirror failed for a file; the message lists each mirror and why it failed.
    """
    dataset = KNOWN_DATASETS.get(name)
    if dataset is None:
        msg = (
            f"Cannot download unknown dataset {name!r}: expected one of "
            f"{', '.join(sorted(KNOWN_DATASETS))}"
        )
        raise DownloadError(msg)
    order = list(dataset.mirrors if mirrors is None else mirrors)
    if not order:
        msg = f"Cannot download {name}: expected at least one mirror URL, found none"
        raise DownloadError(msg)
    folder = dataset_cache_dir(name, cache_dir)
    opener = build_opener()  # reads proxy settings from the environment now
    paths: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for known in dataset.files:
            target = folder / known.name
            paths.append(target)
            with exclusive(target.with_name(target.name + ".lock")):
                if target.is_file():
                    if _mismatch(target, known) is None:
                        if progress is not None:
                            progress(known.name, target.stat().st_size, target.stat().st_size)
                        continue
                    target.unlink()
                used = _download_file(opener, known, target, order, progress, timeout)
            order.remove(used)
            order.insert(0, used)
    except OSError as exc:
        msg = f"Cannot write the {name} download cache in {folder}: {_reason(exc)}"
        raise DownloadError(msg) from None
    return paths
