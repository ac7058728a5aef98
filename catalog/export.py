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

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import numpy.typing as npt
from PIL import Image
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog.db import Dataset, Export, ExportedFile, bulk_executor, utcnow
from catalog.errors import CatalogError, ExportConflictError, ExportError, SelectionError
from catalog.query import PixelBlock, Selection, count_selected, iter_pixel_blocks

LAYOUTS = ("classic", "by-label", "flat")
FORMATS = ("png", "jpg", "bmp", "pgm")
LISTS = ("caffe", "mxnet", "csv")
#: Images handed to one worker task.
TASK_SIZE = 512
TEMP_MARK = ".mnist-catalog-tmp"
#: zlib level for PNG: on 28x28 digits 3 was the fastest level here (26 us, against
#: 30 at level 1 and 37 at 6) for 2% more bytes than 6.
PNG_LEVEL = 3

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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = _png_chunk(b"IEND", b"")
_IDAT_CRC = zlib.crc32(b"IDAT")


def encode_pngs(pixels: npt.NDArray[np.uint8]) -> list[bytes]:
    """8-bit grayscale PNGs of a block of same-size images, byte for byte deterministic.

    PNG is simple enough to write directly: signature, IHDR, one zlib IDAT of
    the rows (each led by filter byte 0), IEND. The header is built once per
    block and the filter bytes added to the whole block at once, leaving one
    ``zlib.compress`` per image; about 4x faster than Pillow for 28x28.
    """
    n, height, width = pixels.shape
    head = _PNG_SIGNATURE + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    rows = np.zeros((n, height, width + 1), dtype=np.uint8)
    rows[:, :, 1:] = pixels
    out = []
    pack, crc32, compress = struct.pack, zlib.crc32, zlib.compress
    for raw in rows.reshape(n, -1):
        idat = compress(raw.tobytes(), PNG_LEVEL)
        out.append(
            b"".join(
                (head, pack(">I", len(idat)), b"IDAT", idat, pack(">I", crc32(idat, _IDAT_CRC)),
                 _PNG_END)
            )
        )  # fmt: skip
    return out


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG of one image (see :func:`encode_pngs`)."""
    return encode_pngs(pixels[np.newaxis])[0]


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
    return encode_many(pixels[np.newaxis], fmt, quality)[0]


def encode_many(pixels: npt.NDArray[np.uint8], fmt: str, quality: int = 95) -> list[bytes]:
    """Encode a block of same-size images as ``fmt`` (png, jpg, bmp or pgm)."""
    if fmt == "png":
        return encode_pngs(pixels)
    if fmt == "pgm":
        return [encode_pgm(image) for image in pixels]
    return [encode_with_pillow(image, fmt, quality) for image in pixels]


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
    folders: dict[str, int] = {}  # folder -> open directory fd
    sha256 = hashlib.sha256
    try:
        for relative, data in zip(
            task.paths, encode_many(task.pixels, task.fmt, task.quality), strict=True
        ):
            where, _, name = relative.rpartition("/")
            folder = f"{task.root}/{where}" if where else task.root
            try:
                if folder not in folders:
                    folders[folder] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                outcome = write_atomically(folders[folder], name, data, task.overwrite)
            except OSError as exc:
                msg = f"Cannot write {name} into {folder}: {exc.strerror}"
                return WriteOutcome(status, sizes, digests, msg)
            status.append(outcome)
            sizes.append(len(data))
            digests.append(sha256(data).hexdigest())
    finally:
        for fd in folders.values():
            os.close(fd)
    return WriteOutcome(status, sizes, digests)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomically(folder_fd: int, name: str, data: bytes, overwrite: bool) -> str:
    """Put ``data`` at ``name`` so that it appears whole or not at all.

    Returns ``written``, ``skipped`` (an identical file is there) or
    ``conflict`` (a different file is there and ``overwrite`` is false).

    On Linux the bytes go into an unnamed file (``O_TMPFILE``) that is linked
    into place once complete: one directory operation, like a plain create.
    Elsewhere, and to replace a file, a temporary name is renamed into place.
    """
    if _HAS_TMPFILE:
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=folder_fd)
        except OSError:
            pass  # the file system does not support it
        else:
            try:
                _write_all(fd, data)
                os.link(
                    f"/proc/self/fd/{fd}", name,
                    dst_dir_fd=folder_fd, src_dir_fd=folder_fd, follow_symlinks=True,
                )  # fmt: skip
                return "written"
            except FileExistsError:
                pass  # compare below
            finally:
                os.close(fd)
    current = _read_existing(folder_fd, name, len(data))
    if current == data:
        return "skipped"
    if current is not None and not overwrite:
        return "conflict"
    temp = f".{name}{TEMP_MARK}-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=folder_fd)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        os.unlink(temp, dir_fd=folder_fd)
        raise
    os.close(fd)
    os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    return "written"


_HAS_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.exists("/proc/self/fd")


def _read_existing(folder_fd: int, name: str, size: int) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, size + 1)
    finally:
        os.close(fd)


class _InlineExecutor:
    """Runs each task in this process (``jobs=1``) as it is submitted."""

    def submit(
        self, fn: Callable[[WriteTask], WriteOutcome], task: WriteTask
    ) -> Future[WriteOutcome]:
        future: Future[WriteOutcome] = Future()
        future.set_result(fn(task))
        return future


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
    for stale in out_dir.glob(f".*{TEMP_MARK}-*"):
        if abandoned(stale):
            stale.unlink(missing_ok=True)  # lists left by an interrupted export
    return out_dir.resolve()


def abandoned(temp: Path) -> bool:
    """Whether the process that writes ``temp`` (its pid ends the name) is gone.

    Another export into the same folder may be writing it right now; only the
    temporary files of processes that died are removed.
    """
    pid = temp.name.rpartition("-")[2]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _make_folders(root: Path, relative_dirs: set[str]) -> None:
    """Create the sub-folders, refusing any that resolve outside ``root``."""
    for relative in sorted(relative_dirs):
        folder = root / relative
        resolved = folder.resolve()  # before mkdir, which would follow links out of root
        if resolved != root and root not in resolved.parents:
            msg = f"Refusing to write to {folder}: it resolves to {resolved}, outside {root}"
            raise ExportError(msg)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"Cannot create folder {folder} in export folder {root}: {exc.strerror}"
            raise ExportError(msg) from None
        for stale in folder.glob(f".*{TEMP_MARK}-*"):
            if abandoned(stale):
                stale.unlink(missing_ok=True)  # left by an interrupted export


class _Lists:
    """Manifest and list files, written under temporary names, renamed at the end."""

    def __init__(self, root: Path, kinds: Sequence[str]) -> None:
        self.root = root
        self.kinds = kinds
        self.handles: list[TextIO] = []
        self.final: list[tuple[Path, Path]] = []
        self.manifest = self._open("manifest.csv")
        self.manifest.write("path,dataset,split,index,label,sha256,file_sha256\n")
        self.per_split: dict[tuple[str, str], TextIO] = {}

    def _open(self, name: str) -> TextIO:
        target = self.root / name
        temp = self.root / f".{name}{TEMP_MARK}-{os.getpid()}"
        self.final.append((temp, target))
        handle = temp.open("w", encoding="utf-8", newline="")
        self.handles.append(handle)
        return handle

    def _list(self, kind: str, split: str) -> TextIO:
        key = (kind, split)
        if key not in self.per_split:
            name = {"caffe": f"{split}.txt", "mxnet": f"{split}.lst", "csv": f"{split}.csv"}[kind]
            handle = self._open(name)
            if kind == "csv":
                handle.write("path,label\n")
            self.per_split[key] = handle
        return self.per_split[key]

    def add(self, files: list[Any]) -> None:
        """Append one block's files (rows from :func:`_collect`) to every list."""
        # Every field is a checked name, a number or a hex digest: no CSV quoting needed.
        self.manifest.write(
            "".join(f"{p},{d},{s},{i},{lb},{h},{fh}\n" for p, d, s, i, lb, h, fh, *_ in files)
        )
        for kind in self.kinds:
            by_split: dict[str, list[str]] = {}
            for path, _dataset, split, index, label, *_ in files:
                if kind == "caffe":
                    line = f"{path} {label}\n"
                elif kind == "mxnet":
                    line = f"{index}\t{label}\t{path}\n"
                else:
                    line = f"{path},{label}\n"  # paths are built from checked names: no quoting
                by_split.setdefault(split, []).append(line)
            for split, lines in by_split.items():
                self._list(kind, split).write("".join(lines))

    def abort(self) -> None:
        for handle in self.handles:
            with suppress(OSError):  # a full disk fails the last flush; the file goes anyway
                handle.close()
        for temp, _ in self.final:
            temp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        try:
            for handle in self.handles:
                handle.close()
        except OSError as exc:
            msg = f"Cannot write the lists into export folder {self.root}: {exc.strerror}"
            raise ExportError(msg) from None
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
    total = count_selected(session, selection)
    names: dict[int, str] = {
        row.id: row.name for row in session.execute(select(Dataset.id, Dataset.name))
    }
    session.commit()  # SQLite cannot turn a read into a write once another process wrote
    record = Export(
        root=str(root), selection=selection.to_json(), layout=layout, format=fmt, count=total
    )
    _begin_write(session)
    session.add(record)
    session.commit()
    recorder = _FileRecorder(session, record.id, root, fmt)
    made: set[str] = set()
    counts = [0, 0]  # written, skipped

    def finish(block: PixelBlock, paths: list[str], futures: list[Future[WriteOutcome]]) -> None:
        """Wait for a block's files, record them, then fail if any could not be written."""
        outcomes = [future.result() for future in futures]
        files = _collect(outcomes, paths, block, names)
        _begin_write(session)
        new, same = recorder.record(files)
        counts[0] += new
        counts[1] += same
        record.written = counts[0]
        session.commit()
        _raise_on_failure(outcomes, files, root, overwrite)
        listing.add(files)
        if progress is not None:
            progress(len(block))

    with ExitStack() as stack, _executor(jobs or default_jobs()) as pool:
        # Pixels stream through a session of their own: the writes below commit chunk
        # by chunk, which would end the stream's cursor on PostgreSQL.
        reader = stack.enter_context(Session(session.get_bind()))
        listing = _Lists(root, lists)
        stack.callback(listing.abort)  # removes the temporary lists unless committed
        # One block in flight while the previous one is recorded.
        pending: tuple[PixelBlock, list[str], list[Future[WriteOutcome]]] | None = None
        for block in iter_pixel_blocks(reader, selection):
            paths = [
                relative_path(layout, fmt, names[ds], split, index, label)
                for ds, split, index, label in zip(
                    block.dataset_ids.tolist(), block.splits, block.indices.tolist(),
                    block.labels.tolist(), strict=True,
                )
            ]  # fmt: skip
            folders = {p.rpartition("/")[0] for p in paths} - {""} - made
            _make_folders(root, folders)
            made |= folders
            tasks = _tasks(root, paths, block, fmt, quality, overwrite)
            submitted = (block, paths, [pool.submit(write_files, task) for task in tasks])
            if pending is not None:
                _finish_or_drain(finish, pending, submitted)
            pending = submitted
        if pending is not None:
            finish(*pending)
        produced = listing.commit()
    written, skipped = counts
    return ExportResult(record.id, root, total, written, skipped, produced[0], produced[1:])


def _finish_or_drain(
    finish: Callable[[PixelBlock, list[str], list[Future[WriteOutcome]]], None],
    current: tuple[PixelBlock, list[str], list[Future[WriteOutcome]]],
    following: tuple[PixelBlock, list[str], list[Future[WriteOutcome]]],
) -> None:
    """Finish ``current``; if that fails, still record what ``following`` wrote."""
    try:
        finish(*current)
    except CatalogError:
        with suppress(CatalogError):
            finish(*following)
        raise


def _begin_write(session: Session) -> None:
    """Start the session's next transaction as a writer (SQLite: BEGIN IMMEDIATE), so
    that it waits for other writers on the busy timeout instead of failing."""
    session.connection(execution_options={"sqlite_immediate": True})


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
    datasets = [names[ds] for ds in block.dataset_ids.tolist()]
    indices, labels, ids = block.indices.tolist(), block.labels.tolist(), block.ids.tolist()
    for task, outcome in enumerate(outcomes):
        for j, (status, size, digest) in enumerate(
            zip(outcome.status, outcome.sizes, outcome.sha256, strict=True)
        ):
            i = task * TASK_SIZE + j
            files.append(
                (
                    paths[i], datasets[i], block.splits[i], indices[i], labels[i],
                    block.sha256[i], digest, ids[i], size, status,
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


FILE_COLUMNS = ("export_id", "image_id", "path", "format", "size", "sha256", "written_at")


class _FileRecorder:
    """Upserts file rows: a new write replaces a path's row, a kept file keeps its own."""

    def __init__(self, session: Session, export_id: int, root: Path, fmt: str) -> None:
        dialect = session.get_bind().dialect.name
        insert: Callable[..., Any]
        if dialect == "postgresql":
            insert = postgresql.insert
        elif dialect == "sqlite":
            insert = sqlite.insert
        else:
            msg = f"Exports need SQLite or PostgreSQL, not {dialect}"
            raise ExportError(msg)
        self.session = session
        self.export_id = export_id
        self.root = root
        self.fmt = fmt
        table = cast(Table, ExportedFile.__table__)
        replace = insert(table)
        replace = replace.on_conflict_do_update(
            index_elements=["path"],
            set_={name: replace.excluded[name] for name in FILE_COLUMNS if name != "path"},
        )
        keep = insert(table).on_conflict_do_nothing(index_elements=["path"])
        self.statements = (replace, keep)
        # Rows go to the driver as they are: convert the timestamp as Core would.
        bound = session.get_bind().dialect
        written_at = table.c.written_at.type.dialect_impl(bound).bind_processor(bound)
        self.to_driver: Callable[[Any], Any] = written_at or (lambda value: value)

    def record(self, files: list[Any]) -> tuple[int, int]:
        """Record one chunk's files; returns (written, kept) counts."""
        now = self.to_driver(utcnow())
        root = str(self.root)
        written: list[tuple[Any, ...]] = []
        kept: list[tuple[Any, ...]] = []
        for path, *_, digest, image_id, size, status in files:
            row = (self.export_id, image_id, f"{root}/{path}", self.fmt, size, digest, now)
            if status == "written":
                written.append(row)
            elif status == "skipped":
                kept.append(row)
        connection = self.session.connection()
        replace, keep = self.statements
        if written:
            bulk_executor(connection, replace, FILE_COLUMNS)(written)
        if kept:
            bulk_executor(connection, keep, FILE_COLUMNS)(kept)
        return len(written), len(kept)
