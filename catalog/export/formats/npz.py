"""The ``npz`` output format: Keras' ``mnist.npz`` layout.

One file, ``OUT/<dataset>.npz`` (``mnist.npz`` for a dataset named ``mnist``),
holding ``x_<split>`` (uint8, ``(n, height, width)``) and ``y_<split>`` (uint8,
``(n,)``) for each split: ``x_train``, ``y_train``, ``x_test``, ``y_test`` for
MNIST, what ``keras.datasets.mnist.load_data`` opens with ``numpy.load``.
Images are in selection order; the manifest's ``path`` is ``<file>#x_<split>/<row>``.
An export of a version adds ``version``: its name and content id, as text.

A zip member is written in one go, and the selection may interleave splits, so
each split's pixels stream into a temporary ``.npy`` file beside the export and
are copied into the zip (deflated) at the end; labels, one byte per image, are
kept in memory. Zip entries carry a fixed date, so the file is the same bytes
on every run and a re-run skips it.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy
from sqlalchemy.orm import Session

from catalog.errors import ExportError
from catalog.export.atomic import TEMP_MARK
from catalog.export.container import ContainerExport, refuse_folder_options, split_runs
from catalog.export.formats import ExportOptions, ExportResult
from catalog.selection import Selection

#: Zip entries' date: fixed, so that the file is the same bytes on every run.
#: (Members are deflated at zlib's default level, as ``numpy.savez_compressed``
#: does: Python 3.11's zipfile takes a level for a ``ZipInfo`` entry only
#: through a private attribute.)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class Spool:
    """One split's pixels as a temporary ``.npy`` file, and its labels."""

    def __init__(self, root: Path, split: str, count: int) -> None:
        self.path = root / f".x_{split}.npy{TEMP_MARK}-{os.getpid()}"
        self.handle: BinaryIO = self.path.open("wb")
        self.count = count
        self.labels: list[npt.NDArray[np.uint8]] = []
        self.written = 0

    def write(self, pixels: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]) -> None:
        if self.written == 0:
            header = {
                "descr": "|u1",
                "fortran_order": False,
                "shape": (self.count, *pixels.shape[1:]),
            }
            npy.write_array_header_1_0(self.handle, header)
        self.handle.write(np.ascontiguousarray(pixels).data)
        self.labels.append(labels.astype(np.uint8))
        self.written += len(pixels)

    def remove(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def write_npz(
    session: Session, selection: Selection, out_dir: Path, options: ExportOptions
) -> ExportResult:
    """Write the selection as one Keras-style ``.npz`` (an
    :class:`~catalog.export.formats.OutputWriter`)."""
    refuse_folder_options(options, "npz")
    with ContainerExport(session, selection, out_dir, options, "npz", "raw") as export:
        spools: dict[str, Spool] = {}
        export.stack.callback(_remove_all, spools)
        target = None
        for block in export.blocks():
            for split, rows in split_runs(block):
                labels = block.labels[rows]
                if len(labels) and (labels.min() < 0 or labels.max() > 255):
                    msg = (
                        f"Split {split!r} has unlabeled images or labels past 255, and Keras' "
                        "npz holds uint8 labels 0-255: select labeled images only"
                    )
                    raise ExportError(msg)
                if target is None:
                    name = export.names[int(block.dataset_ids[0])]
                    target = export.open(f"{name}.npz", int(block.ids[rows[0]]))
                if split not in spools:
                    spools[split] = Spool(export.root, split, export.split_counts[split])
                spool = spools[split]
                start = spool.written
                spool.write(block.pixels[rows], labels)
                export.add(
                    block, rows, [f"{target.name}#x_{split}/{start + k}" for k in range(len(rows))],
                    [block.sha256[i] for i in rows.tolist()],
                )  # fmt: skip
        if target is not None:
            _zip(target.handle, spools, export.stamp)
            target.images = sum(spool.written for spool in spools.values())
        return export.finish()


def _remove_all(spools: dict[str, Spool]) -> None:
    for spool in spools.values():
        spool.remove()


def _zip(handle: BinaryIO, spools: dict[str, Spool], stamp: tuple[str, str] | None) -> None:
    try:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            if stamp is not None:  # ``version``: the version's name and content id, as text
                buffer = io.BytesIO()
                npy.write_array(buffer, np.array(stamp), allow_pickle=False)
                with _member(zf, "version.npy") as member:
                    member.write(buffer.getvalue())
            for split in sorted(spools):
                spool = spools[split]
                spool.handle.close()
                with spool.path.open("rb") as source, _member(zf, f"x_{split}.npy") as member:
                    shutil.copyfileobj(source, member, 1 << 20)
                labels = np.concatenate(spool.labels)
                buffer = io.BytesIO()
                npy.write_array(buffer, labels, allow_pickle=False)
                with _member(zf, f"y_{split}.npy") as member:
                    member.write(buffer.getvalue())
                spool.path.unlink()
    except OSError as exc:
        msg = f"Cannot write the npz file: {exc.strerror}"
        raise ExportError(msg) from None


def _member(zf: zipfile.ZipFile, name: str) -> BinaryIO:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    member: BinaryIO = zf.open(info, "w", force_zip64=True)  # type: ignore[assignment]
    return member
