"""PNGs of a container export's blocks, encoded in worker processes beside the catalog's read.

Parquet files and WebDataset shards hold one PNG per image. These used to be
encoded in threads, because the standard zlib's deflate (about 20 us of a 28x28
digit's 25) releases the GIL. With zlib-ng the deflate is about 6 us, next to
2-3 us of Python around it (slicing, formatting, sha256) that holds the GIL, and
threads spent their time handing the GIL to and fro with each other and with the
thread reading the catalog (``sqlite3`` releases it on every row). Forked workers share no GIL; on MNIST's
70,000 digits a parquet export took 2.4-2.7 s with two threads and 1.6 s with two
processes, for about 0.5 s less CPU (same machine, alternating runs at a load of
about 1.5; at a load of 6, 2.4-3.8 s against 2.1-2.6 s). Pixels go to
a worker and PNGs come back pickled, about 1 MB per task, which costs less than
the GIL did. Where ``fork`` is not available the threads remain.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from catalog.export.encoders import encode_pngs

if TYPE_CHECKING:
    from catalog.export.container import ContainerExport
    from catalog.select.records import PixelBlock

#: Images per encoding task.
PNG_TASK = 1024

Encoded = tuple[list[bytes], list[str]]


def sha256_hex(items: list[bytes]) -> list[str]:
    sha256 = hashlib.sha256
    return [sha256(item).hexdigest() for item in items]


def encode_with_digests(pixels: npt.NDArray[np.uint8]) -> Encoded:
    """PNGs of a block of images and the sha256 of each."""
    pngs = encode_pngs(pixels)
    return pngs, sha256_hex(pngs)


def _gather(futures: list[Future[Encoded]]) -> Encoded:
    pngs: list[bytes] = []
    digests: list[str] = []
    for future in futures:
        more, their = future.result()
        pngs += more
        digests += their
    return pngs, digests


def png_workers(jobs: int) -> Executor:
    """``jobs`` forked worker processes to encode PNGs (threads where there is no fork)."""
    if "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(jobs, thread_name_prefix="png")  # pragma: no cover


def encoded_blocks(
    export: ContainerExport, jobs: int
) -> Iterator[tuple[PixelBlock, list[bytes], list[str]]]:
    """The export's blocks with their PNGs and the PNGs' sha256; one block is
    encoded (by ``jobs`` workers) while the next is read."""
    with png_workers(max(jobs, 1)) as pool:
        pending: tuple[PixelBlock, list[Future[Encoded]]] | None = None
        try:
            for block in export.blocks():
                submitted = (
                    block,
                    [
                        pool.submit(encode_with_digests, block.pixels[start : start + PNG_TASK])
                        for start in range(0, len(block), PNG_TASK)
                    ],
                )
                if pending is not None:
                    yield pending[0], *_gather(pending[1])
                pending = submitted
            if pending is not None:
                yield pending[0], *_gather(pending[1])
        finally:
            # On an error, tasks not started are dropped rather than encoded for nothing.
            pool.shutdown(wait=True, cancel_futures=True)
