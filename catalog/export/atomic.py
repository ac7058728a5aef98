"""Files that appear whole or not at all, and the folders they go into.

Each file is written where no reader can see it (an unnamed ``O_TMPFILE`` file,
or a temporary name marked with :data:`TEMP_MARK`) and linked or renamed into
place once complete. Folders are created only inside the export folder, and
temporary files left by an interrupted export are swept away when it re-runs.
Every output format writes through here.

With ``fsync`` (the default) each file's bytes are flushed to disk before it is
linked into place, and its folder after, so a file the catalog records survives
a power cut; ``--no-fsync`` skips that for speed (see the README's Speed table).
"""

from __future__ import annotations

import os
from pathlib import Path

from catalog.errors import ExportConflictError, ExportError

TEMP_MARK = ".mnist-catalog-tmp"


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomically(
    folder_fd: int, name: str, data: bytes, overwrite: bool, fsync: bool = True
) -> str:
    """Put ``data`` at ``name`` so that it appears whole or not at all.

    Returns ``written``, ``skipped`` (an identical file is there) or
    ``conflict`` (a different file is there and ``overwrite`` is false).

    On Linux the bytes go into an unnamed file (``O_TMPFILE``) that is linked
    into place once complete: one directory operation, like a plain create.
    Elsewhere, and to replace a file, a temporary name is renamed into place.
    With ``fsync`` the bytes are on disk before the name appears; the caller
    syncs the folder (:func:`sync_folder`) before it records the file.
    """
    if HAS_TMPFILE:
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o644, dir_fd=folder_fd)
        except OSError:
            pass  # the file system does not support it
        else:
            try:
                write_all(fd, data)
                if fsync:
                    os.fsync(fd)
                os.link(
                    f"/proc/self/fd/{fd}", name,
                    dst_dir_fd=folder_fd, src_dir_fd=folder_fd, follow_symlinks=True,
                )  # fmt: skip
                return "written"
            except FileExistsError:
                pass  # compare below
            finally:
                os.close(fd)
    current = read_existing(folder_fd, name, len(data))
    if current == data:
        return "skipped"
    if current is not None and not overwrite:
        return "conflict"
    temp = f".{name}{TEMP_MARK}-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=folder_fd)
    try:
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp, dir_fd=folder_fd)
        raise
    os.close(fd)
    os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    return "written"


#: Whether unnamed files (``O_TMPFILE``) can be made here and linked through ``/proc``.
HAS_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.exists("/proc/self/fd")


def read_existing(folder_fd: int, name: str, size: int) -> bytes | None:
    """Up to ``size + 1`` bytes of the file at ``name``, or None when there is none."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, size + 1)
    finally:
        os.close(fd)


#: The most of an existing file :func:`read_whole` reads to compare its content.
COMPARE_LIMIT = 64 << 20


def read_whole(folder_fd: int, name: str) -> bytes | None:
    """All the bytes of the file at ``name`` (None when there is none, or it holds
    more than :data:`COMPARE_LIMIT`)."""
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > COMPARE_LIMIT:
            return None
        parts = []
        while part := os.read(fd, max(size, 1 << 16)):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def sync_folder(folder: Path | int) -> None:
    """Flush a folder's entries (names created, renamed) to disk."""
    if isinstance(folder, int):
        os.fsync(folder)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_root(out_dir: Path, fsync: bool = True) -> Path:
    """Create the export folder, check it is writable, sweep stale temporary files."""
    try:
        created = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
        if created and fsync:
            sync_folder(out_dir.resolve().parent)
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
    temporary files of processes that died are swept.
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


def make_folders(root: Path, relative_dirs: set[str], fsync: bool = True) -> None:
    """Create the sub-folders, refusing any that resolve outside ``root``."""
    for relative in sorted(relative_dirs):
        folder = root / relative
        resolved = folder.resolve()  # before mkdir, which would follow links out of root
        if resolved != root and root not in resolved.parents:
            msg = f"Refusing to write to {folder}: it resolves to {resolved}, outside {root}"
            raise ExportError(msg)
        try:
            created = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            if created and fsync:
                sync_folder(folder.parent)
        except OSError as exc:
            msg = f"Cannot create folder {folder} in export folder {root}: {exc.strerror}"
            raise ExportError(msg) from None
        for stale in folder.glob(f".*{TEMP_MARK}-*"):
            if abandoned(stale):
                stale.unlink(missing_ok=True)  # left by an interrupted export


def conflict_error(root: Path, names: list[str], differs_from: str) -> ExportConflictError:
    """The error for files in the way: the first named, how many more, and what to do."""
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    msg = (
        f"{root / names[0]}{more} already exists and differs from {differs_from}; "
        "use --overwrite to replace"
    )
    return ExportConflictError(msg)
