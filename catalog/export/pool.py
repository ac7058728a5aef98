"""The worker pool: images cut into tasks, encoded and written in worker processes.

A task is :data:`TASK_SIZE` images of one block; :func:`write_files` runs it in a
worker and reports, per image, whether it was written, already there or in the
way of a different file, with sizes and digests that :func:`collect` joins back
to the images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import numpy.typing as npt

from catalog.export.encoders import encode_many
from catalog.export.file_rows import ImageFile
from catalog.export.samepixels import same_png
from catalog.export.staged import StagedWriter
from catalog.select.records import PixelBlock

#: Images handed to one worker task.
TASK_SIZE = 512


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class WriteTask:
    root: str
    paths: list[str]  # relative
    pixels: npt.NDArray[np.uint8]
    fmt: str
    quality: int
    overwrite: bool
    fsync: bool = True  # each file and its folder flushed to disk before it is reported


@dataclass(frozen=True)
class WriteOutcome:
    status: list[str]  # "written", "skipped" or "conflict", per image
    sizes: list[int]
    sha256: list[str]
    error: str | None = None  # an OS error that stopped the task


def write_files(task: WriteTask) -> WriteOutcome:
    """Encode and write one task's images; runs in a worker process.

    Files are made durable a batch at a time (:class:`~catalog.export.staged.StagedWriter`):
    every file reported ``written`` is on disk under its name, its folder synced.
    A PNG already there that decodes to the same pixels in other bytes (another
    deflate wrote it) is kept, and reported with its own size and digest.
    """
    sizes: list[int] = []
    digests: list[str] = []
    folders: dict[str, int] = {}  # folder -> open directory fd
    sha256 = hashlib.sha256
    error: str | None = None
    writer = StagedWriter(overwrite=task.overwrite, fsync=task.fsync)
    try:
        for slot, (relative, data) in enumerate(
            zip(task.paths, encode_many(task.pixels, task.fmt, task.quality), strict=True)
        ):
            where, _, name = relative.rpartition("/")
            folder = f"{task.root}/{where}" if where else task.root
            same = partial(same_png, pixels=task.pixels[slot]) if task.fmt == "png" else None
            try:
                if folder not in folders:
                    folders[folder] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                writer.write(slot, folders[folder], name, data, same)
            except OSError as exc:
                error = f"Cannot write {name} into {folder}: {exc.strerror}"
                break
            on_disk = writer.kept.get(slot, data)
            sizes.append(len(on_disk))
            digests.append(sha256(on_disk).hexdigest())
        try:
            writer.flush()
        except OSError as exc:
            error = error or f"Cannot write into {task.root}: {exc.strerror}"
    finally:
        writer.close()
        for fd in folders.values():
            os.close(fd)
    # Report the images up to the first one without an outcome: all of them were
    # written (and flushed) or found; the rest were not put anywhere.
    status: list[str] = []
    for slot in range(len(sizes)):
        if slot not in writer.outcomes:
            break
        status.append(writer.outcomes[slot])
    return WriteOutcome(status, sizes[: len(status)], digests[: len(status)], error)


class InlineExecutor:
    """Runs each task in this process (``jobs=1``) as it is submitted."""

    def submit(
        self, fn: Callable[[WriteTask], WriteOutcome], task: WriteTask
    ) -> Future[WriteOutcome]:
        future: Future[WriteOutcome] = Future()
        future.set_result(fn(task))
        return future


@contextmanager
def executor(jobs: int) -> Iterator[Executor | InlineExecutor]:
    """A pool of ``jobs`` forked workers, or this process alone for one job."""
    if jobs <= 1:
        yield InlineExecutor()
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        yield pool


def make_tasks(
    root: Path, paths: list[str], block: PixelBlock, fmt: str, quality: int, overwrite: bool,
    fsync: bool = True,
) -> list[WriteTask]:  # fmt: skip
    """Cut one block into tasks of :data:`TASK_SIZE` images."""
    return [
        WriteTask(
            str(root), paths[start : start + TASK_SIZE], block.pixels[start : start + TASK_SIZE],
            fmt, quality, overwrite, fsync,
        )
        for start in range(0, len(paths), TASK_SIZE)
    ]  # fmt: skip


def collect(
    outcomes: list[WriteOutcome], paths: list[str], block: PixelBlock, names: dict[int, str]
) -> list[ImageFile]:
    """The file of each image a task got to (a task stopped by an OS error reports fewer)."""
    files = []
    datasets = [names[ds] for ds in block.dataset_ids.tolist()]
    indices, labels, ids = block.indices.tolist(), block.labels.tolist(), block.ids.tolist()
    originals, decisions = block.original_labels.tolist(), block.decisions.tolist()
    for task, outcome in enumerate(outcomes):
        for j, (status, size, digest) in enumerate(
            zip(outcome.status, outcome.sizes, outcome.sha256, strict=True)
        ):
            i = task * TASK_SIZE + j
            files.append(
                ImageFile(
                    paths[i], datasets[i], block.splits[i], indices[i], labels[i],
                    block.sha256[i], digest, ids[i], size, status, originals[i], decisions[i],
                )
            )  # fmt: skip
    return files
