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

import numpy as np
from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.db.bulk import bulk_inserter
from catalog.db.locks import OnWait, lock_dataset
from catalog.db.models.images import Dataset, Image, Source
from catalog.errors import DatasetConflictError, InvalidNameError, SourceFormatError
from catalog.facts.label_counts import refresh_label_counts
from catalog.facts.metadata import insert_metadata
from catalog.sources import UNLABELED, Decoded, SourceFile, detect_format, get_reader
from catalog.sources.digests import with_file_digests
from catalog.sources.fingerprints import identify_file
from catalog.sources.guard import no_images

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
    warnings: list[str] = field(default_factory=list)  # e.g. lossy pixel conversions
    unlabeled: int = 0  # images stored without a label
    label_set: str | None = None  # where the dataset's class names came from

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


#: Readers that hold several datasets in one source and take ``subset``.
SUBSET_FORMATS = {"emnist": "balanced, byclass, bymerge, digits, letters or mnist"}


def decode_source(
    path: Path, subset: str | None = None, budget: ReadBudget | None = None
) -> Decoded:
    """Detect the format of ``path`` and open it with its reader (headers checked).

    ``subset`` picks one of several datasets a source holds (an EMNIST split);
    ``budget`` is what the reader may hold and read (default :data:`DEFAULT_BUDGET`).
    """
    fmt = detect_format(path)
    budget = budget or DEFAULT_BUDGET
    if subset is None:
        return get_reader(fmt)(path, budget=budget)
    if fmt not in SUBSET_FORMATS:
        msg = f"--subset {subset} does not apply to {path}: it is {fmt}, not EMNIST"
        raise SourceFormatError(msg)
    from catalog.sources.emnist import read_emnist

    return read_emnist(path, subset, budget=budget)


def ingest(
    session: Session,
    path: Path,
    *,
    dataset: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    decoded: Decoded | None = None,
    subset: str | None = None,
    on_wait: OnWait | None = None,
    budget: ReadBudget | None = None,
) -> IngestResult:
    """Decode ``path`` and add its images to ``dataset``, in the session's transaction.

    The caller commits (see :func:`catalog.db.engine.session_scope`); on any error
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
    subset
        Which dataset of a source that holds several (an EMNIST split).
    on_wait
        Called with a message when another ingest of ``dataset`` holds its lock
        (PostgreSQL); this one waits for it, then sees what it committed. On
        SQLite the session's write lock already orders ingests.
    budget
        What the reader may hold and read (:class:`~catalog.budget.ReadBudget`);
        the defaults when None. Unused when ``decoded`` is given (its reader has it).

    Returns
    -------
    IngestResult
        Counts per split, the source files and whether they are genuine.

    Raises
    ------
    EmptySourceError
        For a source of no images (before anything is written).
    CatalogError
        For a source that cannot be read, is over its budget, or conflicts with the catalog.
    """
    if decoded is None:
        decoded = decode_source(path, subset, budget)
    if decoded.total == 0:  # a Decoded made by hand, too: no empty dataset is created
        raise no_images(path)
    default = decoded.dataset or default_dataset_name(path)
    name = check_dataset_name(dataset if dataset is not None else default)
    result = IngestResult(name, decoded.format, dict(decoded.counts), decoded.files)
    result.warnings = decoded.warnings
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
    seen = _insert_images(session, row.id, decoded, progress)
    if not seen:  # the counts promised images that the batches did not hold
        raise no_images(path)
    refresh_label_counts(session, row.id, sorted(set(decoded.counts) | set(present)))
    result.unlabeled = seen.pop(UNLABELED, 0)
    _record_sources(session, row.id, decoded.files, result)
    result.label_set = _update_label_set(session, row.id, decoded, seen, result)
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
) -> dict[int, int]:
    """Insert every batch; return how many images each label has (UNLABELED too)."""
    table = cast(Table, Image.__table__)
    insert_rows = bulk_inserter(session.connection(), table, IMAGE_COLUMNS)
    sha256 = hashlib.sha256
    seen: dict[int, int] = {}
    for batch in decoded.batches:
        n, height, width = batch.pixels.shape
        blobs = [image.tobytes() for image in batch.pixels]
        numbers, counts = np.unique(batch.labels, return_counts=True)
        for number, count in zip(numbers.tolist(), counts.tolist(), strict=True):
            seen[number] = seen.get(number, 0) + count
        labels = [None if label == UNLABELED else label for label in batch.labels.tolist()]
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
                for index, label, blob in zip(batch.indices.tolist(), labels, blobs, strict=True)
            ]
        )
        if batch.meta:
            insert_metadata(session, dataset_id, batch)
        if progress is not None:
            progress(n)
    return seen


def _genuine(file: SourceFile) -> str | None:
    known = identify_file(md5=file.md5, gz_md5=file.file_md5)
    return f"{known.dataset}/{known.name}" if known else None


def _record_sources(
    session: Session, dataset_id: int, files: list[SourceFile], result: IngestResult
) -> None:
    for i, file in enumerate(files):
        if file.file_md5 is None:
            files[i] = file = with_file_digests(file)
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
                file_md5=file.file_md5,
                file_sha256=file.file_sha256,
                genuine=genuine,
                note=file.note,
            )
        )
    session.flush()


def _update_label_set(
    session: Session, dataset_id: int, decoded: Decoded, seen: dict[int, int], result: IngestResult
) -> str:
    """Store the dataset's label set: what the source names, else a genuine dataset's
    built-in names, else what is stored already, else digits or plain numbers."""
    from catalog.facts.label_sets import DIGITS, built_in, from_names, label_set, store_label_set

    stored = session.scalar(select(Dataset.label_set).where(Dataset.id == dataset_id))
    current = label_set(session, dataset_id) if stored else None
    kinds = {g.split("/")[0] for g in result.genuine.values() if g}
    known = built_in(kinds.pop()) if len(kinds) == 1 else None
    if decoded.label_names:
        labels, origin = from_names(decoded.label_names), f"{result.dataset} ({decoded.format})"
    elif known is not None:
        labels, origin = known, f"{next(g for g in result.genuine.values() if g).split('/')[0]}"
    elif current is not None:
        labels, origin = current, stored or "digits"
    elif all(0 <= n <= 9 for n in seen):
        labels, origin = DIGITS, "digits"
    else:  # the labels present, not every number up to the largest
        labels, origin = from_names({n: str(n) for n in seen}), "numbers"
    missing = sorted(n for n in seen if n not in labels)
    if missing:
        names = dict(zip(labels.numbers, labels.names, strict=True)) | {n: str(n) for n in missing}
        labels = from_names(names)
    store_label_set(session, dataset_id, labels, origin)
    return origin
