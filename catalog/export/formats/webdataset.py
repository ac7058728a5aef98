"""The ``webdataset`` output format: tar shards as WebDataset and torchdata read them.

Per split, ``OUT/<split>-000000.tar``, ``OUT/<split>-000001.tar`` ... of
``shard_size`` images each (default 10,000). Each image is three members that
share a key, ``<split>_<index:06d>``: ``<key>.png`` (8-bit grayscale, exactly
the catalog's pixels), ``<key>.cls`` (the label as decimal text) and
``<key>.json`` (``dataset``, ``split``, ``index``, ``label``, ``sha256`` of the
pixels). An unlabeled image has no ``.cls`` and a null ``label``. ``manifest.csv`` is the index of which image is in which shard: its
``path`` is ``<shard>#<key>``.

The tar headers are POSIX ustar, built here from a template (one header is a
few string operations; :mod:`tarfile` builds each from a ``TarInfo`` at several
times the cost, which for three members per image is most of an export's time).
Python's ``tarfile``, GNU tar and WebDataset read them. Each header has mode
0644, owner 0 and mtime 0, so a shard is the same bytes on every run and a
re-run skips it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from catalog.export.container import (
    AtomicFile,
    ContainerExport,
    encoded_blocks,
    refuse_folder_options,
    split_runs,
)
from catalog.export.formats import ExportOptions, ExportResult
from catalog.export.pool import default_jobs
from catalog.query import Selection

BLOCK = 512
RECORD = 20 * BLOCK  # tar files end on a whole record, as tarfile and GNU tar write them
_IDS = b"0000644\0" + b"0000000\0" * 2  # mode, uid, gid
_MTIME = b"%011o\0" % 0
_REST = (
    b"0" + b"\0" * 100  # regular file, no link
    + b"ustar\x0000"  # POSIX magic and version
    + b"\0" * 64  # user and group names
    + b"0000000\0" * 2  # device numbers
    + b"\0" * 167  # name prefix and padding
)  # fmt: skip
_BASE_SUM = sum(_IDS) + sum(_MTIME) + sum(b" " * 8) + sum(_REST)


def tar_header(name: bytes, size: int) -> bytes:
    """A ustar header for a regular file ``name`` (at most 100 bytes) of ``size`` bytes."""
    size_field = b"%011o\0" % size
    checksum = _BASE_SUM + sum(name) + sum(size_field)
    return b"".join(
        (name.ljust(100, b"\0"), _IDS, size_field, _MTIME, b"%06o\0 " % checksum, _REST)
    )


def tar_member(name: bytes, data: bytes) -> bytes:
    """A member: header, data, and zeros up to the next 512-byte block."""
    return tar_header(name, len(data)) + data + b"\0" * (-len(data) % BLOCK)


class Shards:
    """One split's shards: the open one and how many images it holds."""

    def __init__(self, export: ContainerExport, split: str, size: int) -> None:
        self.export, self.split, self.size = export, split, size
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

    def write(self, data: bytes, images: int) -> None:
        assert self.current is not None
        self.current.write(data)
        self.current.images += images
        self.bytes += len(data)

    def close(self) -> None:
        """End the open shard: two zero blocks, then zeros to a whole record."""
        if self.current is not None:
            end = 2 * BLOCK
            self.current.write(b"\0" * (end + (-(self.bytes + end) % RECORD)))
            self.current = None


def write_webdataset(
    session: Session, selection: Selection, out_dir: Path, options: ExportOptions
) -> ExportResult:
    """Write the selection as tar shards of PNG, label and metadata members (an
    :class:`~catalog.export.formats.OutputWriter`)."""
    refuse_folder_options(options, "webdataset")
    with ContainerExport(session, selection, out_dir, options, "webdataset", "png") as export:
        shards: dict[str, Shards] = {}
        for block, pngs, digests in encoded_blocks(export, options.jobs or default_jobs()):
            ids, indices, labels = block.ids.tolist(), block.indices.tolist(), block.labels.tolist()
            datasets = [export.names[ds] for ds in block.dataset_ids.tolist()]
            for split, rows in split_runs(block):
                if split not in shards:
                    shards[split] = Shards(export, split, options.shard_size)
                out = shards[split]
                rows_left = rows.tolist()
                while rows_left:
                    shard, room = out.room(ids[rows_left[0]])
                    part, rows_left = rows_left[:room], rows_left[room:]
                    members: list[bytes] = []
                    paths: list[str] = []
                    for i in part:
                        key = f"{split}_{indices[i]:06d}"
                        label = labels[i]
                        # Names, splits and digests are checked or hex: no JSON escaping needed.
                        meta = (
                            f'{{"dataset": "{datasets[i]}", "split": "{split}", '
                            f'"index": {indices[i]}, "label": {label if label >= 0 else "null"}, '
                            f'"sha256": "{block.sha256[i]}"}}'
                        )
                        members.append(tar_member(f"{key}.png".encode(), pngs[i]))
                        if label >= 0:  # an unlabeled image has no .cls
                            members.append(tar_member(f"{key}.cls".encode(), b"%d" % label))
                        members.append(tar_member(f"{key}.json".encode(), meta.encode()))
                        paths.append(f"{shard.name}#{key}")
                    out.write(b"".join(members), len(part))
                    export.add(
                        block, np.asarray(part, dtype=np.intp), paths, [digests[i] for i in part]
                    )
        for out in shards.values():
            out.close()
        return export.finish()
