"""What the container formats share: a few big files instead of one file per image.

IDX, npz, parquet and WebDataset exports put many images into each file. Each
file is written in pieces, as blocks of pixels stream from the catalog, under a
temporary name in the export folder (:class:`AtomicFile`), and renamed into
place whole once complete, so a reader never sees half a shard. The export is
recorded like a folder export (:class:`ContainerExport`): its row first, then
one exported-file row per output file with the sha256 of its bytes, so that
``audit --check files`` finds a changed or missing shard. The exported-file row
of a container names the first image it holds (the row needs an image); which
images each file holds is in ``manifest.csv``, one line per image, whose
``path`` is ``<file>#<key>``: the row in an IDX, npz or parquet file, the member
key in a shard.

A file already at a final name is skipped when its bytes are equal, and otherwise
a conflict unless ``overwrite``, or unless the format says it holds the same
images (:data:`Same`: a parquet file or shard of PNGs another deflate wrote,
:mod:`catalog.export.samepixels`); such a file is replaced without ``overwrite``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.errors import ExportError, SelectionError
from catalog.export.atomic import TEMP_MARK, conflict_error, prepare_root, sync_folder
from catalog.export.family import ManifestTails
from catalog.export.file_rows import WrittenFile
from catalog.export.formats import ExportOptions, ExportResult
from catalog.export.lists import Lists
from catalog.export.recorder import FileRecorder, begin_write, start_export
from catalog.select.counts import count_images, count_left_out
from catalog.select.ids import choose
from catalog.select.reads import iter_pixel_blocks
from catalog.select.records import PixelBlock
from catalog.selection import Selection
from catalog.versions.freeze import version_stamp

#: Whether the file at the first path holds the same images as the one at the
#: second (a format's own comparison, for files whose bytes differ).
Same = Callable[[Path, Path], bool]


class AtomicFile:
    """One output file, written in pieces under a temporary name, put in place whole.

    Bytes written through :meth:`write` are hashed as they go; a file written
    through its ``handle`` by another writer (gzip, pyarrow, numpy) is hashed
    from disk when sealed.
    """

    def __init__(self, root: Path, name: str, first_image: int, same: Same | None = None) -> None:
        self.name = name
        self.same = same
        self.first_image = first_image  # the image its exported-file row names
        self.target = root / name
        self.temp = root / f".{name}{TEMP_MARK}-{os.getpid()}"
        try:
            self.handle = self.temp.open("wb")
        except OSError as exc:
            msg = f"Cannot write {name} into {root}: {exc.strerror}"
            raise ExportError(msg) from None
        self.images = 0  # how many images it holds
        self.hasher = hashlib.sha256()
        self.hashed = 0  # bytes that went through write() and the hasher
        self.sealed: tuple[str, int] | None = None  # (sha256, size) once complete

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.handle.write(data)
        except OSError as exc:
            msg = f"Cannot write {self.name} into {self.target.parent}: {exc.strerror}"
            raise ExportError(msg) from None
        self.hasher.update(data)
        self.hashed += len(data)

    def seal(self, fsync: bool = True) -> tuple[str, int]:
        """Close the complete file (on disk first with ``fsync``); returns its
        sha256 and size. Can run in a writer thread, once the last write has."""
        if self.sealed is not None:
            return self.sealed
        try:
            self.handle.flush()
            if fsync:
                os.fsync(self.handle.fileno())
            size = os.fstat(self.handle.fileno()).st_size
            self.handle.close()
            if self.hashed == size:
                digest = self.hasher.hexdigest()
            else:
                with self.temp.open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            msg = f"Cannot write {self.name} into {self.target.parent}: {exc.strerror}"
            raise ExportError(msg) from None
        self.sealed = digest, size
        return self.sealed

    def finish(self, overwrite: bool, fsync: bool = True) -> tuple[str, str, int]:
        """Put the file in place; returns (status, sha256, size), status as
        :func:`catalog.export.atomic.write_atomically` gives it. With ``fsync`` the
        bytes are on disk before the name appears."""
        digest, size = self.seal(fsync)
        try:
            if self.target.exists():
                with self.target.open("rb") as handle:
                    current = hashlib.file_digest(handle, "sha256").hexdigest()
                if current == digest:
                    self.temp.unlink()
                    return "skipped", digest, size
                if not overwrite and not (
                    self.same is not None and self.same(self.target, self.temp)
                ):
                    self.temp.unlink()
                    return "conflict", digest, size
            os.replace(self.temp, self.target)
        except OSError as exc:
            msg = f"Cannot write {self.name} into {self.target.parent}: {exc.strerror}"
            raise ExportError(msg) from None
        return "written", digest, size

    def abort(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


def refuse_folder_options(options: ExportOptions, output: str) -> None:
    """A container format has no layout, image format or list files: refuse them."""
    if options.layout != "classic" or options.fmt != "png" or options.lists:
        msg = f"--layout, --format and --list apply to --as folder, not to --as {output}"
        raise SelectionError(msg)
    if options.shard_size < 1:
        msg = f"--shard-size must be 1 or more, got {options.shard_size}"
        raise SelectionError(msg)


class ContainerExport:
    """An export into container files: its record, its files, its manifest.

    Use as a context manager: on an error every temporary file goes; on success
    call :meth:`finish`.
    """

    def __init__(
        self,
        session: Session,
        selection: Selection,
        out_dir: Path,
        options: ExportOptions,
        output: str,
        image_format: str,
        same: Same | None = None,
    ) -> None:
        self.session = session
        self.same = same
        self.selection = selection
        self.options = options
        self.root = prepare_root(out_dir, options.fsync)
        self.chosen = choose(session, selection)  # a sample's ids, drawn once for every use
        self.split_counts = {
            key[0]: n
            for key, n in count_images(session, selection, ("split",), ids=self.chosen.ids)
        }  # before the export's row, which start_export commits
        self.stamp = version_stamp(session, selection)  # (version, content id) or None
        self.record, self.total, self.names = start_export(
            session, self.chosen, self.root, "", image_format, output=output
        )
        if options.on_total is not None:
            options.on_total(self.total)
        self.recorder = FileRecorder(session, self.record.id, self.root, output_file_format(output))
        self.files: list[AtomicFile] = []
        self.stack = ExitStack()
        self.manifest = Lists(self.root, (), self.stamp)
        self.tails = ManifestTails(session)
        self.stack.callback(self.manifest.abort)
        self.stack.callback(self._abort_files)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stack.close()

    def _abort_files(self) -> None:
        for file in self.files:
            if not file.handle.closed:
                file.abort()

    def open(self, name: str, first_image: int) -> AtomicFile:
        """A new output file ``name`` in the export folder."""
        file = AtomicFile(self.root, name, first_image, self.same)
        self.files.append(file)
        return file

    def blocks(self) -> Iterator[PixelBlock]:
        """The selected images with pixels, a block at a time, in selection order."""
        # Pixels stream through a session of their own, as in a folder export.
        with Session(self.session.get_bind()) as reader:
            for block in iter_pixel_blocks(reader, self.selection, ids=self.chosen.ids):
                yield block
                if self.options.progress is not None:
                    self.options.progress(len(block))

    def add(
        self, block: PixelBlock, rows: npt.NDArray[np.intp], paths: list[str], digests: list[str]
    ) -> None:
        """Add the manifest lines of ``block``'s images ``rows``, stored at ``paths``
        (``<file>#<key>``) as bytes with sha256 ``digests``."""
        # The columns of :class:`catalog.export.lists.Lists`' manifest, whatever the
        # format; formatted here column by column, a block at a time.
        whole = len(rows) == len(block)
        picked = rows.tolist()
        datasets = (block.dataset_ids if whole else block.dataset_ids[rows]).tolist()
        labels = (block.labels if whole else block.labels[rows]).tolist()
        ids = (block.ids if whole else block.ids[rows]).tolist()
        indices = (block.indices if whole else block.indices[rows]).tolist()
        originals = (block.original_labels if whole else block.original_labels[rows]).tolist()
        decisions = (block.decisions if whole else block.decisions[rows]).tolist()
        splits = block.splits if whole else [block.splits[i] for i in picked]
        sha256 = block.sha256 if whole else [block.sha256[i] for i in picked]
        names = [self.names[ds] for ds in datasets]
        tails = self.tails.tails(datasets, labels, ids)
        suffix = self.manifest.suffix
        self.manifest.add_lines(
            "".join(
                f"{p},{d},{s},{i},{lb if lb >= 0 else ''},{h},{fh},{ol if ol >= 0 else ''},"
                f"{dc or ''},{tail}{suffix}\n"
                for p, d, s, i, lb, h, fh, ol, dc, tail in zip(
                    paths, names, splits, indices, labels, sha256, digests, originals,
                    decisions, tails, strict=True,
                )
            )
        )  # fmt: skip
        # End that read: the export's own writes (at the end) must begin as a writer.
        self.session.commit()

    def finish(self) -> ExportResult:
        """Put every file in place, record them, write the manifest."""
        rows: list[WrittenFile] = []
        written = skipped = 0
        conflicts: list[str] = []
        for file in self.files:
            status, digest, size = file.finish(self.options.overwrite, self.options.fsync)
            rows.append(WrittenFile(file.name, file.first_image, size, digest, status))
            if status == "written":
                written += file.images
            elif status == "skipped":
                skipped += file.images
            else:
                conflicts.append(file.name)
        if self.options.fsync and self.files:
            sync_folder(self.root)  # the names on disk before the catalog records them
        begin_write(self.session)
        self.recorder.record(rows)
        self.record.written = written
        self.session.commit()
        if conflicts:
            raise conflict_error(self.root, conflicts, "what the export writes")
        produced = self.manifest.commit()
        left_out = count_left_out(self.session, self.selection)
        self.session.commit()
        return ExportResult(
            self.record.id, self.root, self.total, written, skipped, produced[0],
            left_out=left_out, files=[file.target for file in self.files],
        )  # fmt: skip


def output_file_format(output: str) -> str:
    """The ``format`` of an output format's exported-file rows (8 characters at most)."""
    return "tar" if output == "webdataset" else output


def split_runs(block: PixelBlock) -> Iterator[tuple[str, npt.NDArray[np.intp]]]:
    """Each split in ``block`` with the rows that belong to it, in block order."""
    if len(set(block.splits)) == 1:
        yield block.splits[0], np.arange(len(block))
        return
    splits = np.asarray(block.splits)
    for split in dict.fromkeys(block.splits):
        yield split, np.flatnonzero(splits == split)


def file_prefix(split: str) -> str:
    """MNIST's names for its splits in file names: ``train`` and ``t10k``."""
    return "t10k" if split == "test" else split
