"""Files: exported files against the disk.

Missing, changed, unreadable, decoding to other pixels, and files in export folders the
catalog does not know. Unlike the other checks it looks at the whole catalog at once.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding, ImageRef
from catalog.db.models.exports import Export, ExportedFile
from catalog.db.models.images import Dataset, Image
from catalog.select.blocks import stream_rows
from catalog.select.filters import dataset_id

LIST_FILES = {"manifest.csv"}
#: Exported-file formats of files that hold many images (catalog.export.container).
CONTAINER_FILES = ("idx", "npz", "parquet", "tar")
#: Threads that read and hash exported files, and files per task. Opening and
#: reading a file releases the GIL, so while one thread waits for the disk (files
#: written long ago are no longer in the page cache) the others go on.
READERS = 4
FILES_PER_TASK = 64
#: Files up to this size (every image file) are read in one ``os.read``; bigger ones
#: (containers) are streamed through the hash, never held whole.
SMALL_FILE = 1 << 20


def run(context: AuditContext) -> Outcome:
    ids = [dataset_id(context.session, n) for n in context.datasets]
    total = context.session.scalar(
        select(func.count()).select_from(ExportedFile)
        .join(Image, Image.id == ExportedFile.image_id).where(Image.dataset_id.in_(ids))
    ) or 0  # fmt: skip
    return check_files(context.session, ids, context.ticker("files", total))


def check_files(
    session: Session, dataset_ids: list[int], progress: Callable[[int], None] | None = None
) -> Outcome:
    """Recorded exported files against the disk, and unknown files in export folders.

    Files are read and hashed by :data:`READERS` threads, a block of rows at a time.
    """
    query = (
        select(ExportedFile.path, ExportedFile.sha256, ExportedFile.format, ExportedFile.size,
               Dataset.name, Image.split, Image.index, Image.label, Image.sha256, Image.id)
        .join(Image, Image.id == ExportedFile.image_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.dataset_id.in_(dataset_ids))
        .order_by(ExportedFile.path)
    )  # fmt: skip
    problems: dict[str, list[tuple[ImageRef, str, str]]] = {
        "missing": [], "changed": [], "unreadable": [], "pixels-differ": [],
        "container-changed": [],
    }  # fmt: skip
    known: set[str] = set()
    checked = 0
    with ThreadPoolExecutor(READERS, thread_name_prefix="files") as readers:
        # One block is read from disk while the next block of rows is fetched.
        pending: tuple[Sequence[Any], list[Future[list[str | OSError]]]] | None = None
        for rows in stream_rows(session.connection(), query, 4096):
            files = [(row[0], row[3]) for row in rows]
            known.update(path for path, _ in files)
            tasks = [
                readers.submit(_digests, files[at : at + FILES_PER_TASK])
                for at in range(0, len(files), FILES_PER_TASK)
            ]
            if pending is not None:
                checked += _examine(session, *pending, problems, progress)
            pending = rows, tasks
        if pending is not None:
            checked += _examine(session, *pending, problems, progress)
    roots = session.scalars(
        select(Export.root)
        .where(
            Export.id.in_(
                select(ExportedFile.export_id)
                .join(Image, Image.id == ExportedFile.image_id)
                .where(Image.dataset_id.in_(dataset_ids))
            )
        )
        .distinct()
    ).all()
    foreign = _unknown_files(roots, known)
    severity = {
        "missing": "error",
        "changed": "warning",
        "unreadable": "error",
        "pixels-differ": "error",
        "container-changed": "error",
    }
    what = {
        "missing": "exported file(s) are missing",
        "changed": "exported file(s) changed on disk (digest differs)",
        "unreadable": "exported file(s) cannot be read or decoded",
        "pixels-differ": "exported file(s) decode to pixels that differ from the catalog's",
        "container-changed": "exported container file(s) (IDX, npz, parquet, shards) changed on disk",
    }
    findings = [
        Finding("files", code, severity[code], f"{len(items)} {what[code]}: "
                + ", ".join(p for _, p, _ in items[:3]) + (" ..." if len(items) > 3 else ""),
                [ref for ref, _, _ in items],
                {"paths": [p for _, p, _ in items], "reasons": [r for _, _, r in items]})
        for code, items in problems.items()
        if items
    ]  # fmt: skip
    if foreign:
        findings.append(
            Finding("files", "unknown-file", "warning",
                    f"{len(foreign)} file(s) in export folders are not known to the catalog: "
                    + ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else ""),
                    details={"paths": foreign})
        )  # fmt: skip
    summary = {"recorded": checked, "export_folders": len(roots), "unknown": len(foreign)} | {
        code: len(items) for code, items in problems.items()
    }
    return findings, summary


def _examine(
    session: Session,
    rows: Sequence[Any],
    tasks: list[Future[list[str | OSError]]],
    problems: dict[str, list[tuple[ImageRef, str, str]]],
    progress: Callable[[int], None] | None,
) -> int:
    """Sort a block of rows whose files' digests differ from the recorded ones
    into ``problems``; returns how many rows it held."""
    found = [result for task in tasks for result in task.result()]
    for row, on_disk in zip(rows, found, strict=True):
        path, digest, fmt = row[0], row[1], row[2]
        if on_disk == digest:
            continue
        ref = ImageRef(row[4], row[5], row[6], row[7], row[8])
        if isinstance(on_disk, FileNotFoundError):
            problems["missing"].append((ref, path, "no such file"))
            continue
        if isinstance(on_disk, OSError):
            problems["unreadable"].append((ref, path, on_disk.strerror or str(on_disk)))
            continue
        if fmt in CONTAINER_FILES:
            # A shard or IDX file holds many images (manifest.csv lists them):
            # any change to its bytes changes what training reads.
            reason = f"{fmt} file's digest differs from the one recorded"
            problems["container-changed"].append((ref, path, reason))
            continue
        problems["changed"].append((ref, path, "digest differs from the one recorded"))
        if fmt != "jpg":  # lossy: its pixels never equalled the catalog's
            _compare_pixels(session, path, row[9], ref, problems)
    if progress is not None:
        progress(len(rows))
    return len(rows)


def _compare_pixels(
    session: Session,
    path: str,
    image_id: int,
    ref: ImageRef,
    problems: dict[str, list[tuple[ImageRef, str, str]]],
) -> None:
    """Decode a changed image file and compare it with the catalog's pixels
    (read only for the few files that changed)."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        data = Path(path).read_bytes()  # an image file: small
        with PILImage.open(io.BytesIO(data)) as image:
            decoded = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        problems["unreadable"].append((ref, path, f"cannot decode: {exc}"))
        return
    height, width, pixels = session.execute(
        select(Image.height, Image.width, Image.pixels).where(Image.id == image_id)
    ).one()
    expected = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
    if decoded.shape != expected.shape or not np.array_equal(decoded, expected):
        problems["pixels-differ"].append((ref, path, "decodes to different pixels"))


def _digests(files: list[tuple[str, int]]) -> list[str | OSError]:
    """The sha256 of each file (path, recorded size), or the error reading it gave."""
    found: list[str | OSError] = []
    sha256 = hashlib.sha256
    for path, size in files:
        try:
            if size > SMALL_FILE:
                with open(path, "rb") as handle:
                    found.append(hashlib.file_digest(handle, "sha256").hexdigest())
                continue
            # One read of the recorded size and a byte more (a third of the time of
            # ``Path.read_bytes``, which builds a file object); a file that has grown
            # is read to its end.
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.read(fd, size + 1)
                hasher = sha256(data)
                while len(data) > size and (more := os.read(fd, SMALL_FILE)):
                    hasher.update(more)
                found.append(hasher.hexdigest())
            finally:
                os.close(fd)
        except OSError as exc:
            found.append(exc)
    return found


def _unknown_files(roots: Sequence[str], known: set[str]) -> list[str]:
    """Image files under the export folders that no exported-file row names."""
    foreign: list[str] = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if path in known or _is_export_listing(root, folder, name):
                    continue
                foreign.append(path)
    return sorted(foreign)


def _is_export_listing(root: str, folder: str, name: str) -> bool:
    """Manifest and list files an export writes at its root."""
    if os.path.normpath(folder) != os.path.normpath(root):
        return False
    return name in LIST_FILES or name.endswith((".txt", ".lst", ".csv"))
