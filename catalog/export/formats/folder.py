"""The ``folder`` output format: one image file per image, in a layout people use.

Files are encoded and written by the worker pool (:mod:`catalog.export.pool`),
each atomically (:mod:`catalog.export.atomic`). Re-running an export skips
files that are already there and identical; a different file at a target path
is an error unless ``overwrite``. Names use the current labels; a re-run after
decisions removes old names of relabelled images and files of excluded ones
(:mod:`catalog.export.sync`). One block of images is in the workers while
the previous one is recorded, so encoding and the catalog's writes overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack, suppress
from pathlib import Path

from sqlalchemy.orm import Session

from catalog.errors import CatalogError, ExportError, SelectionError
from catalog.export.atomic import conflict_error, make_folders, prepare_root
from catalog.export.family import label_folders, manifest_extras
from catalog.export.file_rows import CONFLICT, ImageFile
from catalog.export.formats import ExportOptions, ExportResult
from catalog.export.layouts import FORMATS, LAYOUTS, relative_path
from catalog.export.lists import LISTS, Lists
from catalog.export.pool import (
    WriteOutcome,
    collect,
    default_jobs,
    executor,
    make_tasks,
    write_files,
)
from catalog.export.recorder import FileRecorder, begin_write, start_export
from catalog.export.sync import remove_stale
from catalog.select.counts import count_left_out
from catalog.select.ids import choose
from catalog.select.reads import iter_pixel_blocks
from catalog.select.records import PixelBlock
from catalog.selection import Selection
from catalog.versions.freeze import version_stamp

Pending = tuple[PixelBlock, list[str], list[Future[WriteOutcome]]]


def check_options(options: ExportOptions) -> None:
    """Refuse an unknown layout, image format or list kind, or a JPG quality out of range."""
    if options.layout not in LAYOUTS:
        msg = f"Unknown layout {options.layout!r}: expected one of {', '.join(LAYOUTS)}"
        raise SelectionError(msg)
    if options.fmt not in FORMATS:
        msg = f"Unknown image format {options.fmt!r}: expected one of {', '.join(FORMATS)}"
        raise SelectionError(msg)
    unknown = [kind for kind in options.lists if kind not in LISTS]
    if unknown:
        msg = f"Unknown list kind {unknown[0]!r}: expected any of {', '.join(LISTS)}"
        raise SelectionError(msg)
    if not 1 <= options.quality <= 100:
        msg = f"JPG quality must be 1-100, got {options.quality}"
        raise SelectionError(msg)


def write_folder(
    session: Session, selection: Selection, out_dir: Path, options: ExportOptions
) -> ExportResult:
    """Write the selected images as files into ``out_dir`` and record each file
    (an :class:`~catalog.export.formats.OutputWriter`)."""
    check_options(options)
    layout, fmt, quality, overwrite = (
        options.layout,
        options.fmt,
        options.quality,
        options.overwrite,
    )
    label_dir = label_folders(session, options.folder_names)
    root = prepare_root(out_dir, options.fsync)
    chosen = choose(session, selection)  # a sample's ids, drawn once for every use below
    stamp = version_stamp(session, selection)  # read before start_export commits
    record, total, names = start_export(session, chosen, root, layout, fmt)
    if options.on_total is not None:
        options.on_total(total)
    recorder = FileRecorder(session, record.id, root, fmt)
    made: set[str] = set()
    counts = [0, 0]  # written, skipped
    exported: dict[int, str] = {}  # image id -> relative path this run

    def finish(block: PixelBlock, paths: list[str], futures: list[Future[WriteOutcome]]) -> None:
        """Wait for a block's files, record them, then fail if any could not be written."""
        outcomes = [future.result() for future in futures]
        files = collect(outcomes, paths, block, names)
        begin_write(session)
        new, same = recorder.record(files)
        counts[0] += new
        counts[1] += same
        record.written = counts[0]
        session.commit()
        _raise_on_failure(outcomes, files, root, overwrite)
        listing.add(files, manifest_extras(session, files))
        exported.update((f.image_id, f.path) for f in files)
        session.commit()  # end that read: the next chunk's write must begin as a writer
        if options.progress is not None:
            options.progress(len(block))

    with ExitStack() as stack, executor(options.jobs or default_jobs()) as pool:
        # Pixels stream through a session of their own: the writes below commit chunk
        # by chunk, which would end the stream's cursor on PostgreSQL.
        reader = stack.enter_context(Session(session.get_bind()))
        listing = Lists(root, options.lists, stamp)
        stack.callback(listing.abort)  # removes the temporary lists unless committed
        # One block in flight while the previous one is recorded.
        pending: Pending | None = None
        for block in iter_pixel_blocks(reader, selection, ids=chosen.ids):
            paths = [
                relative_path(layout, fmt, names[ds], split, index, label_dir(ds, label))
                for ds, split, index, label in zip(
                    block.dataset_ids.tolist(), block.splits, block.indices.tolist(),
                    block.labels.tolist(), strict=True,
                )
            ]  # fmt: skip
            folders = {p.rpartition("/")[0] for p in paths} - {""} - made
            make_folders(root, folders, options.fsync)
            made |= folders
            tasks = make_tasks(root, paths, block, fmt, quality, overwrite, options.fsync)
            submitted = (block, paths, [pool.submit(write_files, task) for task in tasks])
            if pending is not None:
                _finish_or_drain(finish, pending, submitted)
            pending = submitted
        if pending is not None:
            finish(*pending)
        produced = listing.commit()
    written, skipped = counts
    begin_write(session)
    renamed, removed = remove_stale(session, record, selection, exported)
    session.commit()
    return ExportResult(
        record.id, root, total, written, skipped, produced[0], produced[1:], renamed, removed,
        count_left_out(session, selection),
    )  # fmt: skip


def _finish_or_drain(
    finish: Callable[[PixelBlock, list[str], list[Future[WriteOutcome]]], None],
    current: Pending,
    following: Pending,
) -> None:
    """Finish ``current``; if that fails, still record what ``following`` wrote."""
    try:
        finish(*current)
    except CatalogError:
        with suppress(CatalogError):
            finish(*following)
        raise


def _raise_on_failure(
    outcomes: list[WriteOutcome], files: list[ImageFile], root: Path, overwrite: bool
) -> None:
    for outcome in outcomes:
        if outcome.error:
            raise ExportError(outcome.error)
    conflicts = [f.path for f in files if f.status == CONFLICT]
    if conflicts:
        raise conflict_error(root, conflicts, "the catalog's image")
