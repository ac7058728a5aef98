"""A writer thread: an export's file writes, in order, beside the read and encoding.

Writing a container file is mostly work that releases the GIL (the kernel's
copy of the bytes, sha256 of them, zlib, pyarrow's encoding, fsync), so one
thread doing it overlaps with the catalog's read and the next block's
formatting on another core. Writes run in the order submitted; at most
``depth`` are waiting, so memory stays a few blocks. An error in a write is
raised in the exporting thread at the next :meth:`Background.submit` or at
:meth:`Background.drain`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self


class Background:
    """One writer thread; use as a context manager and :meth:`drain` on success."""

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="export-writer")
        self.pending: deque[Future[Any]] = deque()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        # On an error, writes not started are dropped; the one running finishes
        # before the export removes its temporary files.
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Run ``write(*args)`` after the writes submitted before it."""
        self.pending.append(self.pool.submit(write, *args))
        while len(self.pending) > self.depth:
            self.pending.popleft().result()

    def drain(self) -> None:
        """Wait for every write; raise the first error."""
        while self.pending:
            self.pending.popleft().result()
