"""Ingest: decoded batches into catalog rows, one transaction per source.

The store knows the database, not file formats: it takes whatever a reader
from :mod:`catalog.sources` decodes and writes it with Core ``executemany``
in batches, never one ORM object per image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from catalog.db import Dataset, Image, Source, bulk_inserter
from catalog.errors import DatasetConflictError, InvalidNameError
from catalog.fingerprints import identify_file
from catalog.locks import OnWait, lock_dataset
from catalog.sources import Decoded, SourceFile, detect_format, get_reader

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Progress = Callable[[int], None]


@dataclass
class IngestResult:
    """What an ingest did."""

    dataset: str
    format: str
    counts: dict[str, int]  # images per split in the source
    files: list[SourceFile] = field(default_factory=list)
    genuine: dict[str, str | None] = field(default_factory=dict)  # uri -> known file
    already_present: bool = False  # same content was there: nothing written
    replaced: list[str] = field(default_factory=list)  # splits deleted first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset name, else raise InvalidNameError.

    >>> check_dataset_name("fashion-mnist")
    'fashion-mnist'
    """
    if not DATASET_NAME.fullmatch(name) or ".." in name:
        msg = (
            f"Invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
        raise InvalidNameError(msg)
    return name


def default_dataset_name(path: Path) -> str:
    """A dataset name from the source's name: ``mnist.pkl.gz`` -> ``mnist``.

    >>> default_dataset_name(Path("data/mnist.pkl.gz"))
    'mnist'
    >>> default_dataset_name(Path("fashion/train-images-idx3-ubyte.gz"))
    'fashion'
    """
    resolved = path.resolve() if path.exists() else path
    base = resolved.name
    if not resolved.is_dir() and ("idx" in base or not base.split(".")[0]):
        base = resolved.parent.name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", base.split(".")[0]).strip("-._")
    return stem.lower()[:64] or "dataset"


def decode_source(path: Path) -> Decoded:
    """Detect the format of ``path`` and open it with its reader (headers checked)."""
    return get_reader(detect_format(path))(path)


def ingest(
    session: Session,
    path: Path,
    *,
    dataset: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    decoded: Decoded | None = None,
    on_wait: OnWait | None = None,
) -> IngestResult:
    """Decode ``path`` and add its images to ``dataset``, in the session's transaction.

    The caller commits (see :func:`catalog.db.session_scope`); on any error
    the transaction is rolled back and the catalog is unchanged.

    Parameters
    ----------
    session
        An open session; everything is written in its transaction.
    path
        An IDX folder or file, a pickle, an npz, or a folder of images.
    dataset
        Name of the dataset to add to; default from the source's name.
    replace
        Delete the dataset's images in the splits this source provides first.
    progress
        Called with the number of images written after each batch.
    decoded
        ``path`` as :func:`decode_source` already opened it (say, to size a
        progress bar), so that its headers are not read twice.
    on_wait
        Called with a message when another ingest of ``dataset`` holds its lock
        (PostgreSQL); this one waits for it, then sees what it committed. On
        SQLite the session's write lock already orders ingests.

    Returns
    -------
    IngestResult
        Counts per split, the source files and whether they are genuine.

    Raises
    ------
    CatalogError
        For a source that cannot be read, or that conflicts with the catalog.
    """
    name = check_dataset_name(dataset if dataset is not None else default_dataset_name(path))
    if decoded is None:
        decoded = decode_source(path)
    result = IngestResult(name, decoded.format, dict(decoded.counts), decoded.files)
    lock_dataset(session.connection(), name, on_wait)
    row = session.scalars(select(Dataset).where(Dataset.name == name)).one_or_none()
    if row is None:
        row = Dataset(name=name)
        session.add(row)
        session.flush()
    present = _splits_present(session, row.id, list(decoded.counts))
    if present and not replace:
        return _same_or_conflict(session, row, decoded, present, result)
    if present:
        _delete_splits(session, row.id, present)
        result.replaced = present
    _insert_images(session, row.id, decoded, progress)
    _record_sources(session, row.id, decoded.files, result)
    return result


def _splits_present(session: Session, dataset_id: int, splits: Sequence[str]) -> list[str]:
    query = (
        select(Image.split)
        .where(Image.dataset_id == dataset_id, Image.split.in_(splits))
        .group_by(Image.split)
    )
    return sorted(session.scalars(query))


def _same_or_conflict(
    session: Session, row: Dataset, decoded: Decoded, present: list[str], result: IngestResult
) -> IngestResult:
    """The splits are there already: same content is a no-op, other content an error."""
    for _ in decoded.batches:  # decode (and validate) fully to learn the digests
        pass
    known = set(session.scalars(select(Source.sha256).where(Source.dataset_id == row.id)))
    if all(f.sha256 in known for f in decoded.files):
        result.already_present = True
        for file in decoded.files:
            result.genuine[file.uri] = _genuine(file)
        return result
    msg = (
        f"Dataset {row.name!r} already has images in split(s) {', '.join(present)} "
        "from a different source; use --replace to re-ingest them, or --dataset NAME"
    )
    raise DatasetConflictError(msg)


def _delete_splits(session: Session, dataset_id: int, splits: list[str]) -> None:
    session.execute(delete(Image).where(Image.dataset_id == dataset_id, Image.split.in_(splits)))
    session.execute(delete(Source).where(Source.dataset_id == dataset_id, Source.split.in_(splits)))
    # Sources that held several splits go when none of their splits is left.
    remaining = select(func.count()).select_from(Image).where(Image.dataset_id == dataset_id)
    if session.scalar(remaining) == 0:
        session.execute(delete(Source).where(Source.dataset_id == dataset_id))


IMAGE_COLUMNS = ("dataset_id", "split", "idx", "label", "height", "width", "pixels", "sha256")


def _insert_images(
    session: Session, dataset_id: int, decoded: Decoded, progress: Progress | None
) -> None:
    table = cast(Table, Image.__table__)
    insert_rows = bulk_inserter(session.connection(), table, IMAGE_COLUMNS)
    sha256 = hashlib.sha256
    for batch in decoded.batches:
        n, height, width = batch.pixels.shape
        blobs = [image.tobytes() for image in batch.pixels]
        insert_rows(
            [
                (
                    dataset_id,
                    batch.split,
                    index,
                    label,
                    height,
                    width,
                    blob,
                    sha256(blob).hexdigest(),
                )
                for index, label, blob in zip(
                    batch.indices.tolist(), batch.labels.tolist(), blobs, strict=True
                )
            ]
        )
        if progress is not None:
            progress(n)


def _genuine(file: SourceFile) -> str | None:
    known = identify_file(md5=file.md5)
    return f"{known.dataset}/{known.name}" if known else None


def _record_sources(
    session: Session, dataset_id: int, files: list[SourceFile], result: IngestResult
) -> None:
    for file in files:
        genuine = _genuine(file)
        result.genuine[file.uri] = genuine
        session.add(
            Source(
                dataset_id=dataset_id,
                uri=file.uri,
                split=file.split,
                format=file.format,
                role=file.role,
                size=file.size,
                sha256=file.sha256,
                md5=file.md5,
                genuine=genuine,
                note=file.note,
            )
        )
    session.flush()
