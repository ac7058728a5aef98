"""Output formats: one writer per way of laying a selection on disk.

``folder`` writes one image file per image (:mod:`catalog.export.formats.folder`).
A new output format (MNIST IDX files, a Keras npz, parquet, WebDataset shards)
is one module here with a function that fits :class:`OutputWriter`, and one
line in :data:`WRITERS`. A writer prepares the folder with
:mod:`catalog.export.atomic`, records the export and its files with
:mod:`catalog.export.recorder` and writes its manifest with
:mod:`catalog.export.lists`, so every format is atomic, recorded and checkable
the same way.

Output format (``folder``, ...) is not image format (``png``, ``jpg``, ...:
:data:`catalog.export.layouts.FORMATS`): the second is how a folder export
encodes each file, ``ExportOptions.fmt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalog.selection import Selection

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ExportOptions:
    """How to write an export; each writer reads the fields that apply to it."""

    layout: str = "classic"
    fmt: str = "png"  # image file format
    quality: int = 95  # JPG only
    lists: Sequence[str] = ()
    overwrite: bool = False
    jobs: int | None = (
        None  # worker processes (folder; PNGs of parquet, webdataset); None: all cores
    )
    progress: Progress | None = None  # called with images done after each chunk
    on_total: Progress | None = None  # called once with the number of images to export
    folder_names: str = "numbers"  # by-label folders: label "numbers" or class "names"
    shard_size: int = 10_000  # webdataset: images per shard
    fsync: bool = True  # files and folders on disk before they are recorded


class ExportSettings(TypedDict, total=False):
    """The export options as keyword arguments, typed once for every entry point
    (``export_images``, ``CatalogSelection.export``, ``export_holdout``): the fields
    of :class:`ExportOptions`, each optional."""

    layout: str
    fmt: str
    quality: int
    lists: Sequence[str]
    overwrite: bool
    jobs: int | None
    progress: Progress | None
    on_total: Progress | None
    folder_names: str
    shard_size: int
    fsync: bool


@dataclass
class ExportResult:
    """What an export did.

    For a container format (every output but ``folder``), ``count``, ``written``
    and ``skipped`` count images (those in files written, those in files already
    there and identical) and ``files`` lists the files.
    """

    export_id: int
    root: Path
    count: int  # files in the export
    written: int  # files this run wrote
    skipped: int  # files already there and identical
    manifest: Path
    lists: list[Path] = field(default_factory=list)
    renamed: int = 0  # files of relabelled images removed from their old names
    removed: int = 0  # files of now-excluded images removed from the folder
    left_out: int = 0  # images the filters match that are excluded
    files: list[Path] = field(default_factory=list)  # container formats: the files


class OutputWriter(Protocol):
    """Write the selected images into ``out_dir`` and record the export and its files.

    Commits ``session`` as it goes; raises a ``CatalogError`` for bad options
    before anything is written.
    """

    def __call__(
        self, session: Session, selection: Selection, out_dir: Path, options: ExportOptions
    ) -> ExportResult: ...


#: Writer modules by output format name; imported on first use, so that a
#: format's dependencies load only when it is used.
WRITERS: dict[str, tuple[str, str]] = {
    "folder": ("catalog.export.formats.folder", "write_folder"),
    "idx": ("catalog.export.formats.idx", "write_idx"),
    "npz": ("catalog.export.formats.npz", "write_npz"),
    "parquet": ("catalog.export.formats.parquet", "write_parquet"),
    "webdataset": ("catalog.export.formats.webdataset", "write_webdataset"),
}


def get_writer(output: str) -> OutputWriter:
    """Return the writer registered for ``output`` (a key of :data:`WRITERS`)."""
    import importlib

    module, function = WRITERS[output]
    writer: OutputWriter = getattr(importlib.import_module(module), function)
    return writer
