"""An advisory lock on a file, for processes that share a folder (the download cache).

POSIX ``flock``: the lock goes with the open file, so it is released when the
holder closes it or dies. The holder removes the lock file before it lets go,
so none is left in the folder; a waiter that then wakes up on the removed file
sees that the path no longer names what it locked, and tries again. Where
``fcntl`` does not exist (Windows) the lock does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _same_file(handle: TextIO, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, then removed), waiting for other holders."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    while True:
        handle = path.open("a")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        if _same_file(handle, path):
            break
        handle.close()  # the holder before us removed it: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # releases the lock
