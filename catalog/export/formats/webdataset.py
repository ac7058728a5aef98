"""The ``webdataset`` output format: tar shards as WebDataset and torchdata read them.

Per split, ``OUT/<split>-000000.tar``, ``OUT/<split>-000001.tar`` ... of
``shard_size`` images each (default 10,000). Each image is three members that
share a key, ``<split>_<index:06d>``: ``<key>.png`` (8-bit grayscale, exactly
the catalog's pixels), ``<key>.cls`` (the label as decimal text) and
``<key>.json`` (``dataset``, ``split``, ``index``, ``label``, ``sha256`` of the
pixels; an export of a version adds ``version`` and ``content_id``). An unlabeled
image has no ``.cls`` and a null ``label``. ``manifest.csv`` is the index of which image is in which shard: its
``path`` is ``<shard>#<key>``.

The tar headers are POSIX ustar, built a block of members at a time
(:mod:`catalog.export.tarblocks`; :mod:`tarfile` builds each from a ``TarInfo``
at many times the cost, which for three members per image would be most of an
export's time). Python's ``tarfile``, GNU tar and WebDataset read them. Each
header has mode 0644, owner 0 and mtime 0, so a shard is the same bytes on
every run and a re-run skips it. A shard already there whose PNGs another
deflate wrote (same pixels, other bytes) and whose other members are equal is
replaced without ``--overwrite`` (:func:`same_shard`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from catalog.export.background import Background
from catalog.export.container import (
    AtomicFile,
    ContainerExport,
    refuse_folder_options,
    split_runs,
)
from catalog.export.formats import ExportOptions, ExportResult
from catalog.export.pngs import encoded_blocks
from catalog.export.pool import default_jobs
from catalog.export.samepixels import same_pngs
from catalog.export.tarblocks import (
    BLOCK,
    NAME,
    RECORD,
    read_members,
    tar_members,
    without_size,
)
from catalog.selection import Selection


class Shards:
    """One split's shards: the open one and how many images it holds. Bytes go
    to the files through the export's writer thread, which seals each shard
    (flush, fsync, digest) as soon as it is complete."""

    def __init__(self, export: ContainerExport, split: str, size: int, writer: Background) -> None:
        self.export, self.split, self.size, self.writer = export, split, size, writer
        self.number = -1
        self.current: AtomicFile | None = None
        self.bytes = 0

    def room(self, first_image: int) -> tuple[AtomicFile, int]:
        """The shard the next image goes into, and how many more images it takes."""
        if self.current is None or self.current.images == self.size:
            self.close()
            self.number += 1
            self.current = self.export.open(f"{self.split}-{self.number:06d}.tar", first_image)
            self.bytes = 0
        return self.current, self.size - self.current.images

    def write(self, data: bytes | memoryview, images: int) -> None:
        assert self.current is not None
        self.writer.submit(self.current.write, data)
        self.current.images += images
        self.bytes += len(data)

    def close(self) -> None:
        """End the open shard: two zero blocks, then zeros to a whole record."""
        if self.current is not None:
            end = 2 * BLOCK
            self.writer.submit(self.current.write, b"\0" * (end + (-(self.bytes + end) % RECORD)))
            self.writer.submit(self.current.seal, self.export.options.fsync)
            self.current = None


def same_shard(existing: Path, written: Path) -> bool:
    """Whether two shards hold the same members: the same headers (but for sizes),
    the same labels and metadata, and PNGs of the same pixels."""
    old, new = read_members(existing.read_bytes()), read_members(written.read_bytes())
    if old is None or new is None or old[1] != new[1] or len(old[0]) != len(new[0]):
        return False
    old_pngs: list[bytes] = []
    new_pngs: list[bytes] = []
    for (old_header, old_data), (new_header, new_data) in zip(old[0], new[0], strict=True):
        if without_size(old_header) != without_size(new_header):
            return False
        if new_header[:NAME].rstrip(b"\0").endswith(b".png"):
            old_pngs.append(old_data)
            new_pngs.append(new_data)
        elif old_data != new_data:
            return False
    return same_pngs(old_pngs, new_pngs)


def write_webdataset(
    session: Session, selection: Selection, out_dir: Path, options: ExportOptions
) -> ExportResult:
    """Write the selection as tar shards of PNG, label and metadata members (an
    :class:`~catalog.export.formats.OutputWriter`)."""
    refuse_folder_options(options, "webdataset")
    with (
        ContainerExport(
            session, selection, out_dir, options, "webdataset", "png", same_shard
        ) as export,
        Background() as writer,
    ):
        shards: dict[str, Shards] = {}
        # Version names are checked and content ids hex: no JSON escaping needed.
        stamp = (
            "" if export.stamp is None
            else f', "version": "{export.stamp[0]}", "content_id": "{export.stamp[1]}"'
        )  # fmt: skip
        for block, pngs, digests in encoded_blocks(export, options.jobs or default_jobs()):
            ids, indices, labels = block.ids.tolist(), block.indices.tolist(), block.labels.tolist()
            datasets = [export.names[ds] for ds in block.dataset_ids.tolist()]
            for split, rows in split_runs(block):
                if split not in shards:
                    shards[split] = Shards(export, split, options.shard_size, writer)
                out = shards[split]
                rows_left = rows.tolist()
                while rows_left:
                    shard, room = out.room(ids[rows_left[0]])
                    part, rows_left = rows_left[:room], rows_left[room:]
                    names: list[bytes] = []
                    datas: list[bytes] = []
                    paths: list[str] = []
                    for i in part:
                        key = f"{split}_{indices[i]:06d}"
                        label = labels[i]
                        # Names, splits and digests are checked or hex: no JSON escaping needed.
                        meta = (
                            f'{{"dataset": "{datasets[i]}", "split": "{split}", '
                            f'"index": {indices[i]}, "label": {label if label >= 0 else "null"}, '
                            f'"sha256": "{block.sha256[i]}"{stamp}}}'
                        )
                        if label >= 0:  # an unlabeled image has no .cls
                            names += (f"{key}.png".encode(), f"{key}.cls".encode(),
                                      f"{key}.json".encode())  # fmt: skip
                            datas += (pngs[i], b"%d" % label, meta.encode())
                        else:
                            names += (f"{key}.png".encode(), f"{key}.json".encode())
                            datas += (pngs[i], meta.encode())
                        paths.append(f"{shard.name}#{key}")
                    out.write(tar_members(names, datas), len(part))
                    export.add(
                        block, np.asarray(part, dtype=np.intp), paths, [digests[i] for i in part]
                    )
        for out in shards.values():
            out.close()
        writer.drain()
        return export.finish()
