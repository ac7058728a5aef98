"""Export: write a selection as image files in the layouts people use, and
record every file in the catalog.

Layouts (``OUT`` is the export folder):

- ``classic``: ``OUT/<split>/<index:06d>_<label>.<ext>``, what the old
  ``pyplot.imsave`` recipe wrote, so existing scripts keep working;
- ``by-label``: ``OUT/<split>/<label>/<index:06d>.<ext>``, what torchvision's
  ``ImageFolder`` and Keras' ``image_dataset_from_directory`` read;
- ``flat``: ``OUT/<dataset>_<split>_<index:06d>_<label>.<ext>``.

PNG, BMP and PGM are lossless 8-bit grayscale: the file decodes to exactly the
catalog's pixels. JPG is lossy and written only when asked. Each file is written
under a temporary name in its folder and renamed into place, so no half-written
image ever sits at its final name. Re-running an export skips files that are
already there and identical; a different file at a target path is an error
unless ``overwrite``. File rows are committed chunk by chunk, so an interrupted
export has recorded what it wrote and a re-run finishes the job.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
from PIL import Image
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog.db import Dataset, Export, ExportedFile
from catalog.errors import ExportConflictError, ExportError, SelectionError
from catalog.query import PixelBlock, Selection, iter_pixel_blocks, select_ids

LAYOUTS = ("classic", "by-label", "flat")
FORMATS = ("png", "jpg", "bmp", "pgm")
LISTS = ("caffe", "mxnet", "csv")
#: Images handed to one worker task.
TASK_SIZE = 512
TEMP_MARK = ".mnist-catalog-tmp"

Progress = Callable[[int], None]


@dataclass
class ExportResult:
    """What an export did."""

    export_id: int
    root: Path
    count: int  # files in the export
    written: int  # files this run wrote
    skipped: int  # files already there and identical
    manifest: Path
    lists: list[Path] = field(default_factory=list)


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- encoders ---------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG of ``pixels``, byte for byte deterministic.

    PNG is simple enough to write directly (signature, IHDR, one zlib IDAT,
    IEND); doing so is about 3x faster than going through Pillow for 28x28.
    """
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            _png_chunk(b"IEND", b""),
        )
    )


def encode_pgm(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A binary (P5) PGM of ``pixels``."""
    height, width = pixels.shape
    return b"P5\n%d %d\n255\n" % (width, height) + pixels.tobytes()


def encode_with_pillow(pixels: npt.NDArray[np.uint8], fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="L")
    if fmt == "jpg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="BMP")
    return buffer.getvalue()


def encode(pixels: npt.NDArray[np.uint8], fmt: str, quality: int = 95) -> bytes:
    """Encode one image as ``fmt`` (png, jpg, bmp or pgm)."""
    if fmt == "png":
        return encode_png(pixels)
    if fmt == "pgm":
        return encode_pgm(pixels)
    return encode_with_pillow(pixels, fmt, quality)


# --- paths ------------------------------------------------------------------


def relative_path(layout: str, fmt: str, dataset: str, split: str, index: int, label: int) -> str:
    """Where an image goes inside the export folder, as a POSIX relative path.

    >>> relative_path("classic", "png", "mnist", "test", 7, 9)
    'test/000007_9.png'
    >>> relative_path("by-label", "png", "mnist", "train", 12, 3)
    'train/3/000012.png'
    """
    if layout == "classic":
        return f"{split}/{index:06d}_{label}.{fmt}"
    if layout == "by-label":
        return f"{split}/{label}/{index:06d}.{fmt}"
    return f"{dataset}_{split}_{index:06d}_{label}.{fmt}"


# --- workers ----------------------------------------------------------------


@dataclass(frozen=True)
class WriteTask:
    root: str
    paths: list[str]  # relative
    pixels: npt.NDArray[np.uint8]
    fmt: str
    quality: int
    overwrite: bool


@dataclass(frozen=True)
class WriteOutcome:
    status: list[str]  # "written", "skipped" or "conflict", per image
    sizes: list[int]
    sha256: list[str]
    error: str | None = None  # an OS error that stopped the task


def write_files(task: WriteTask) -> WriteOutcome:
    """Encode and write one task's images; runs in a worker process."""
    status: list[str] = []
    sizes: list[int] = []
    digests: list[str] = []
    for relative, pixels in zip(task.paths, task.pixels, strict=True):
        data = encode(pixels, task.fmt, task.quality)
        target = os.path.join(task.root, relative)
        try:
            outcome = _write_one(target, data, task.overwrite)
        except OSError as exc:
            where = os.path.dirname(target)
            return WriteOutcome(
                status, sizes, digests, f"Cannot write into {where}: {exc.strerror}"
            )
        status.append(outcome)
        sizes.append(len(data))
        digests.append(hashlib.sha256(data).hexdigest())
    return WriteOutcome(status, sizes, digests)


def _write_one(target: str, data: bytes, overwrite: bool) -> str:
    try:
        with open(target, "rb") as existing:
            current = existing.read(len(data) + 1)
    except FileNotFoundError:
        current = None
    if current == data:
        return "skipped"
    if current is not None and not overwrite:
        return "conflict"
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}{TEMP_MARK}-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    os.replace(temp, target)
    return "written"


class _InlineExecutor:
    """Runs tasks in this process (``jobs=1``), with the executor's ``map`` shape."""

    def map(
        self, fn: Callable[[WriteTask], WriteOutcome], tasks: list[WriteTask]
    ) -> Iterator[WriteOutcome]:
        return map(fn, tasks)


@contextmanager
def _executor(jobs: int) -> Iterator[Executor | _InlineExecutor]:
    if jobs <= 1:
        yield _InlineExecutor()
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        yield pool


# --- the export -------------------------------------------------------------


def _prepare_root(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"Cannot create export folder {out_dir}: {exc.strerror}"
        raise ExportError(msg) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        msg = f"Cannot write into export folder {out_dir}: permission denied"
        raise ExportError(msg)
    return out_dir.resolve()


def _make_folders(root: Path, relative_dirs: set[str]) -> None:
    """Create the sub-folders, refusing any that resolve outside ``root``."""
    for relative in sorted(relative_dirs):
        folder = root / relative
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"Cannot create folder {folder} in export folder {root}: {exc.strerror}"
            raise ExportError(msg) from None
        resolved = folder.resolve()
        if resolved != root and root not in resolved.parents:
            msg = f"Refusing to write to {folder}: it resolves to {resolved}, outside {root}"
            raise ExportError(msg)
        for stale in folder.glob(f".*{TEMP_MARK}-*"):
            stale.unlink(missing_ok=True)  # left by an interrupted export


class _Lists:
    """Manifest and list files, written under temporary names, renamed at the end."""

    def __init__(self, root: Path, kinds: Sequence[str]) -> None:
        self.root = root
        self.kinds = kinds
        self.handles: list[TextIO] = []
        self.final: list[tuple[Path, Path]] = []
        self.manifest = self._open("manifest.csv")
        self.manifest_csv = csv.writer(self.manifest, lineterminator="\n")
        self.manifest_csv.writerow(
            ["path", "dataset", "split", "index", "label", "sha256", "file_sha256"]
        )
        self.per_split: dict[tuple[str, str], Any] = {}

    def _open(self, name: str) -> TextIO:
        target = self.root / name
        temp = self.root / f".{name}{TEMP_MARK}-{os.getpid()}"
        self.final.append((temp, target))
        handle = temp.open("w", encoding="utf-8", newline="")
        self.handles.append(handle)
        return handle

    def _list(self, kind: str, split: str) -> Any:
        key = (kind, split)
        if key not in self.per_split:
            name = {"caffe": f"{split}.txt", "mxnet": f"{split}.lst", "csv": f"{split}.csv"}[kind]
            handle = self._open(name)
            if kind == "csv":
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(["path", "label"])
                self.per_split[key] = writer
            else:
                self.per_split[key] = handle
        return self.per_split[key]

    def add(self, row: tuple[str, str, str, int, int, str, str]) -> None:
        path, _dataset, split, index, label, _sha, _file_sha = row
        self.manifest_csv.writerow(row)
        for kind in self.kinds:
            target = self._list(kind, split)
            if kind == "caffe":
                target.write(f"{path} {label}\n")
            elif kind == "mxnet":
                target.write(f"{index}\t{label}\t{path}\n")
            else:
                target.writerow([path, label])

    def abort(self) -> None:
        for handle in self.handles:
            handle.close()
        for temp, _ in self.final:
            temp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        for handle in self.handles:
            handle.close()
        for temp, target in self.final:
            os.replace(temp, target)
        return [target for _, target in self.final]


def export_images(
    session: Session,
    selection: Selection,
    out_dir: Path,
    *,
    layout: str = "classic",
    fmt: str = "png",
    quality: int = 95,
    lists: Sequence[str] = (),
    overwrite: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the selected images into ``out_dir`` and record each file.

    Commits the session after each chunk of files, so what is on disk and what
    the catalog records never drift apart by more than one chunk.

    Parameters
    ----------
    session
        An open session; it is committed as the export goes.
    selection
        Which images.
    out_dir
        The export folder (created if needed).
    layout, fmt, quality
        See the module docstring; ``quality`` is for JPG only.
    lists
        Any of ``caffe`` (``<split>.txt``: ``path label``), ``mxnet``
        (``<split>.lst``: ``index<TAB>label<TAB>path``) and ``csv``
        (``<split>.csv``); ``manifest.csv`` is always written.
    overwrite
        Replace files that differ from what the export writes.
    jobs
        Worker processes that encode and write; default all cores.
    progress
        Called with the number of images done after each chunk.

    Raises
    ------
    ExportConflictError
        When a file at a target path differs and ``overwrite`` is false.
    ExportError
        When the folder cannot be created or written.
    """
    if layout not in LAYOUTS:
        msg = f"Unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}"
        raise SelectionError(msg)
    if fmt not in FORMATS:
        msg = f"Unknown image format {fmt!r}: expected one of {', '.join(FORMATS)}"
        raise SelectionError(msg)
    unknown = [kind for kind in lists if kind not in LISTS]
    if unknown:
        msg = f"Unknown list kind {unknown[0]!r}: expected any of {', '.join(LISTS)}"
        raise SelectionError(msg)
    if not 1 <= quality <= 100:
        msg = f"JPG quality must be 1-100, got {quality}"
        raise SelectionError(msg)
    root = _prepare_root(out_dir)
    total = len(select_ids(session, selection))
    names = dict(session.execute(select(Dataset.id, Dataset.name)).tuples().all())
    record = Export(
        root=str(root), selection=selection.to_json(), layout=layout, format=fmt, count=total
    )
    session.add(record)
    session.commit()
    upsert = _upserter(session)
    written = skipped = 0
    with ExitStack() as stack, _executor(jobs or default_jobs()) as pool:
        listing = _Lists(root, lists)
        stack.callback(listing.abort)  # removes the temporary lists unless committed
        for block in iter_pixel_blocks(session, selection):
            paths = [
                relative_path(layout, fmt, names[ds], split, index, label)
                for ds, split, index, label in zip(
                    block.dataset_ids.tolist(), block.splits, block.indices.tolist(),
                    block.labels.tolist(), strict=True,
                )
            ]  # fmt: skip
            _make_folders(root, {os.path.dirname(p) for p in paths} - {""})
            outcomes = list(
                pool.map(write_files, _tasks(root, paths, block, fmt, quality, overwrite))
            )
            files = _collect(outcomes, paths, block, names)
            new, same = _record_files(session, upsert, record, root, fmt, files)
            written += new
            skipped += same
            record.written = written
            session.commit()
            _raise_on_failure(outcomes, files, root, overwrite)
            for row in files:
                listing.add(row[:7])
            if progress is not None:
                progress(len(block))
        produced = listing.commit()
    return ExportResult(record.id, root, total, written, skipped, produced[0], produced[1:])


def _tasks(
    root: Path, paths: list[str], block: PixelBlock, fmt: str, quality: int, overwrite: bool
) -> list[WriteTask]:
    return [
        WriteTask(
            str(root), paths[start : start + TASK_SIZE], block.pixels[start : start + TASK_SIZE],
            fmt, quality, overwrite,
        )
        for start in range(0, len(paths), TASK_SIZE)
    ]  # fmt: skip


def _collect(
    outcomes: list[WriteOutcome], paths: list[str], block: PixelBlock, names: dict[int, str]
) -> list[tuple[str, str, str, int, int, str, str, int, int, str]]:
    """(path, dataset, split, index, label, sha256, file_sha256, image id, size, status)
    for each image a task got to (a task stopped by an OS error reports fewer)."""
    files = []
    for task, outcome in enumerate(outcomes):
        for j, (status, size, digest) in enumerate(
            zip(outcome.status, outcome.sizes, outcome.sha256, strict=True)
        ):
            i = task * TASK_SIZE + j
            files.append(
                (
                    paths[i], names[int(block.dataset_ids[i])], block.splits[i],
                    int(block.indices[i]), int(block.labels[i]), block.sha256[i], digest,
                    int(block.ids[i]), size, status,
                )
            )  # fmt: skip
    return files


def _raise_on_failure(
    outcomes: list[WriteOutcome], files: list[Any], root: Path, overwrite: bool
) -> None:
    for outcome in outcomes:
        if outcome.error:
            raise ExportError(outcome.error)
    conflicts = [row[0] for row in files if row[-1] == "conflict"]
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        msg = (
            f"{root / conflicts[0]}{more} already exists and differs from the catalog's image; "
            "use --overwrite to replace"
        )
        raise ExportConflictError(msg)


def _upserter(session: Session) -> Callable[..., Any]:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    msg = f"Exports need SQLite or PostgreSQL, not {dialect}"
    raise ExportError(msg)


def _record_files(
    session: Session,
    insert: Callable[..., Any],
    record: Export,
    root: Path,
    fmt: str,
    files: list[Any],
) -> tuple[int, int]:
    """Upsert one row per file: new writes replace the row, kept files keep theirs."""
    rows_written = []
    rows_kept = []
    for path, *_, digest, image_id, size, status in files:
        row = {
            "export_id": record.id, "image_id": image_id, "path": str(root / path),
            "format": fmt, "size": size, "sha256": digest,
        }  # fmt: skip
        if status == "written":
            rows_written.append(row)
        elif status == "skipped":
            rows_kept.append(row)
    table = ExportedFile.__table__
    if rows_written:
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["path"],
            set_={
                "export_id": statement.excluded.export_id,
                "image_id": statement.excluded.image_id,
                "format": statement.excluded.format,
                "size": statement.excluded.size,
                "sha256": statement.excluded.sha256,
                "written_at": statement.excluded.written_at,
            },
        )
        session.execute(statement, rows_written)
    if rows_kept:
        session.execute(insert(table).on_conflict_do_nothing(index_elements=["path"]), rows_kept)
    return len(rows_written), len(rows_kept)
