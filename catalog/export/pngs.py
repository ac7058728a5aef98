"""PNGs of a container export's blocks, encoded in threads beside the catalog's read.

Parquet files and WebDataset shards hold one PNG per image. Almost all of a
PNG's cost is ``zlib.compress``, which releases the GIL, so threads encode in
parallel with each other and with the read of the next block, with no process
to start and no pixels or PNGs to pickle across (a process pool spent more
on that than it saved on MNIST's 28x28 digits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from catalog.export.encoders import encode_pngs

if TYPE_CHECKING:
    from catalog.export.container import ContainerExport
    from catalog.query import PixelBlock

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


def encoded_blocks(
    export: ContainerExport, jobs: int
) -> Iterator[tuple[PixelBlock, list[bytes], list[str]]]:
    """The export's blocks with their PNGs and the PNGs' sha256; one block is
    encoded (by ``jobs`` threads) while the next is read."""
    with ThreadPoolExecutor(max(jobs, 1), thread_name_prefix="png") as pool:
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
