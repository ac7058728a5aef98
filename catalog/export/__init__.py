"""Export: write a selection in a shape training code reads, and record every file.

The output format (``output``, a key of :data:`WRITERS`) says what goes on disk:
``folder`` is one image file per image, in one of the :data:`LAYOUTS` (see
:mod:`catalog.export.layouts`), each encoded in one of the image :data:`FORMATS`;
``idx``, ``npz``, ``parquet`` and ``webdataset`` put many images into each file
(see :mod:`catalog.export.container`). Each file appears whole or not at all; re-running an
export skips files that are already there and identical; file rows are
committed chunk by chunk, so an interrupted export has recorded what it wrote
and a re-run finishes the job.

The package is cut by what each part knows, so that a new output format is one
file in ``formats/`` that reuses the rest:

- ``layouts``: file names per layout; ``encoders``: pixels to PNG/JPG/BMP/PGM;
- ``atomic``: whole-or-nothing files and the folders they go in;
- ``pool``: worker processes that encode and write (folder exports);
- ``container``: the files of the other outputs; ``pngs``: their PNGs, encoded in
  threads; ``tarblocks``: tar members a block at a time; ``background``: the
  writer thread that writes and seals their files;
- ``lists``: the manifest and the caffe/mxnet/csv list files;
- ``recorder``: the export's row and its files' rows in the catalog;
- ``formats``: the registry of output writers, one Protocol.

Importing this package loads no numpy, Pillow or SQLAlchemy, so the CLI can name
outputs, layouts and formats in its help without paying for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from catalog.errors import SelectionError
from catalog.export.formats import (
    WRITERS,
    ExportOptions,
    ExportResult,
    ExportSettings,
    get_writer,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from catalog.selection import Selection


def export_images(
    session: Session,
    selection: Selection,
    out_dir: Path,
    *,
    output: str = "folder",
    **settings: Unpack[ExportSettings],
) -> ExportResult:
    """Write the selected images into ``out_dir`` and record each file.

    Commits the session after each chunk of files, so what is on disk and what
    the catalog records never drift apart by more than one chunk.

    Parameters
    ----------
    session
        An open session; it is committed as the export goes.
    selection
        Which images.
    out_dir
        The export folder (created if needed).
    output
        The output format, a key of :data:`WRITERS`: ``folder`` (one file per
        image), ``idx`` (MNIST's gzipped IDX files), ``npz`` (Keras' ``mnist.npz``),
        ``parquet`` (the Hugging Face layout) or ``webdataset`` (tar shards).
    **settings
        The fields of :class:`~catalog.export.formats.ExportOptions` (typed by
        :class:`~catalog.export.formats.ExportSettings`), with these defaults:
    layout, fmt, quality
        For ``folder`` (``classic``, ``png``, 95): see :mod:`catalog.export.layouts`;
        ``quality`` is for JPG only.
    lists
        Any of ``caffe`` (``<split>.txt``: ``path label``), ``mxnet``
        (``<split>.lst``: ``index<TAB>label<TAB>path``) and ``csv``
        (``<split>.csv``); ``manifest.csv`` is always written.
    overwrite
        Replace files that differ from what the export writes.
    jobs
        Worker processes that encode and write; default all cores.
    progress
        Called with the number of images done after each chunk.
    on_total
        Called once, before anything is written, with the number of images the export
        holds (a sample's ids are drawn once: this is their count).
    folder_names
        ``numbers`` (``train/1/``) or ``names``: the class name as the label's
        folder (``train/Trouser/``), as ImageFolder users expect. Unlabeled
        images go to ``unlabeled/`` either way.
    shard_size
        For ``webdataset``: images per shard.
    fsync
        Flush each file and its folder to disk before recording it (default);
        False is faster and risks recorded files lost in a power cut.

    Raises
    ------
    SelectionError
        When an option is unknown or out of range; nothing is written.
    ExportConflictError
        When a file at a target path differs and ``overwrite`` is false.
    ExportError
        When the folder cannot be created or written.
    """
    if output not in WRITERS:
        msg = f"Unknown output format {output!r}: expected one of {', '.join(WRITERS)}"
        raise SelectionError(msg)
    options = ExportOptions(**settings)
    return get_writer(output)(session, selection, out_dir, options)
