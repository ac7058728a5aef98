"""Many small files made durable together: written unseen, flushed side by side, then named.

:func:`~catalog.export.atomic.write_atomically` flushes each file before it links
it into place. One ``fsync`` at a time costs a journal commit each (about 4 ms on
an ext4 disk: 70,000 PNGs would spend five minutes waiting), while fsyncs issued
together share commits. So a :class:`StagedWriter` keeps the same promise (a
file's bytes are on disk before its name appears, and the folder's names before
the caller records them) for a batch at a time:

1. each file's bytes go into an unnamed ``O_TMPFILE`` file (or a temporary name
   marked with :data:`~catalog.export.atomic.TEMP_MARK` where that is missing);
2. the batch's files are flushed by a pool of threads, whose fsyncs the file
   system groups into few commits;
3. each file is linked (or renamed) to its name.

A file already at its name is compared first and never rewritten when equal, so a
re-run after an interruption reads instead of writing and flushing again. Equal
means the same bytes or, where the caller says how (``same``), the same content in
other bytes: a PNG written by another deflate that decodes to the same pixels
(:mod:`catalog.export.samepixels`), which is kept as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from catalog.export.atomic import (
    HAS_TMPFILE,
    TEMP_MARK,
    read_existing,
    read_whole,
    sync_folder,
    write_all,
    write_atomically,
)

__all__ = ["BATCH", "FSYNC_THREADS", "StagedWriter"]

#: Files staged before they are flushed together (each holds one open descriptor).
BATCH = 128
#: Threads issuing fsyncs at once; beyond a few dozen the commits are already shared.
FSYNC_THREADS = 32


@dataclass
class _Staged:
    slot: int  # the caller's position of this file
    folder_fd: int
    name: str
    fd: int
    temp: str | None  # None: an unnamed O_TMPFILE file
    data: bytes  # kept for the rare race at naming time


class StagedWriter:
    """Writes files atomically, flushing them in batches; :meth:`close` it when done.

    :meth:`write` returns ``"skipped"`` or ``"conflict"`` at once when a file is
    already at the name, and ``None`` when the file was staged: its outcome
    (``"written"``) arrives from :meth:`flush`, which runs by itself every
    :data:`BATCH` files and must be called (or the writer closed) before the caller
    counts on the files. ``outcomes`` maps each slot to its outcome so far;
    ``kept`` holds the bytes of the files kept because ``same`` found them equal
    to what would have been written (their digest is not that of ``data``).
    """

    def __init__(self, *, overwrite: bool, fsync: bool = True) -> None:
        self.overwrite = overwrite
        self.fsync = fsync
        self.outcomes: dict[int, str] = {}
        self.kept: dict[int, bytes] = {}
        self._staged: list[_Staged] = []
        self._folders: set[int] = set()  # folders whose names changed since the last flush
        self._pool: ThreadPoolExecutor | None = None

    def write(
        self,
        slot: int,
        folder_fd: int,
        name: str,
        data: bytes,
        same: Callable[[bytes], bool] | None = None,
    ) -> str | None:
        """Stage ``data`` for ``name`` in the folder ``folder_fd``; see the class.
        ``same(existing bytes)`` says whether a file already there that differs
        from ``data`` holds the same content all the same."""
        current = read_existing(folder_fd, name, len(data))
        if current is not None:
            if current == data:
                self.outcomes[slot] = "skipped"
                return "skipped"
            if same is not None:
                whole = read_whole(folder_fd, name)
                if whole is not None and same(whole):
                    self.kept[slot] = whole
                    self.outcomes[slot] = "skipped"
                    return "skipped"
            if not self.overwrite:
                self.outcomes[slot] = "conflict"
                return "conflict"
        staged = self._stage(slot, folder_fd, name, data, replace=current is not None)
        self._staged.append(staged)
        if len(self._staged) >= BATCH:
            self.flush()
        return None

    def _stage(self, slot: int, folder_fd: int, name: str, data: bytes, replace: bool) -> _Staged:
        fd, temp = -1, None
        if HAS_TMPFILE and not replace:
            try:
                fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=folder_fd)
            except OSError:
                fd = -1  # the file system does not support it
        if fd < 0:
            temp = f".{name}{TEMP_MARK}-{os.getpid()}-{slot}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            fd = os.open(temp, flags, 0o644, dir_fd=folder_fd)
        try:
            write_all(fd, data)
        except BaseException:
            self._discard(_Staged(slot, folder_fd, name, fd, temp, data))
            raise
        return _Staged(slot, folder_fd, name, fd, temp, data)

    def flush(self) -> None:
        """Flush the staged files together, then name them; then sync their folders."""
        staged, self._staged = self._staged, []
        named = 0
        try:
            if self.fsync and len(staged) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(FSYNC_THREADS)
                list(self._pool.map(os.fsync, [file.fd for file in staged]))
            elif self.fsync and staged:
                os.fsync(staged[0].fd)
            for file in staged:
                self._publish(file)
                named += 1
        finally:
            for file in staged[named:]:
                self._discard(file)  # not named: nothing appears
        if self.fsync:
            for folder in self._folders:
                sync_folder(folder)  # the new names, before the caller records them
        self._folders.clear()

    def _publish(self, file: _Staged) -> None:
        try:
            if file.temp is None:
                try:
                    os.link(
                        f"/proc/self/fd/{file.fd}", file.name,
                        dst_dir_fd=file.folder_fd, src_dir_fd=file.folder_fd,
                        follow_symlinks=True,
                    )  # fmt: skip
                except FileExistsError:
                    # Another writer put a file there since write() looked: compare again.
                    os.close(file.fd)
                    file.fd = -1
                    self._settle_race(file)
                    return
            else:
                os.replace(
                    file.temp, file.name, src_dir_fd=file.folder_fd, dst_dir_fd=file.folder_fd
                )
                file.temp = None
        finally:
            if file.fd >= 0:
                os.close(file.fd)
                file.fd = -1
        self._folders.add(file.folder_fd)
        self.outcomes[file.slot] = "written"

    def _settle_race(self, file: _Staged) -> None:
        """Another writer named a file ``file.name`` after :meth:`write` looked."""
        outcome = write_atomically(file.folder_fd, file.name, file.data, self.overwrite, self.fsync)
        if outcome == "written":
            self._folders.add(file.folder_fd)
        self.outcomes[file.slot] = outcome

    def _discard(self, file: _Staged) -> None:
        if file.fd >= 0:
            os.close(file.fd)
            file.fd = -1
        if file.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file.temp, dir_fd=file.folder_fd)

    def close(self) -> None:
        """Drop anything still staged (nothing appears) and stop the threads."""
        for file in self._staged:
            self._discard(file)
        self._staged = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
