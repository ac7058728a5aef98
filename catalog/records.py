"""What the catalog hands back: image rows, pixel blocks, dataset and export listings.

:mod:`catalog.query` decides which images are selected; this module holds the
types its answers come in and the listings that need no selection. Every name
here is also importable from :mod:`catalog.query`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db import Dataset, Export, ExportedFile, Source
from catalog.dbtypes import bytewise
from catalog.labelsets import label_set
from catalog.models.label_counts import LabelCount
from catalog.query_family import count_by_label


@dataclass(frozen=True)
class ImageRow:
    """One selected image, without its pixels."""

    id: int
    dataset: str
    split: str
    index: int
    label: int | None  # the current label (the source's with ``original_labels``); None: unlabeled
    sha256: str
    paths: tuple[str, ...] = ()
    original_label: int | None = None  # the source's label
    excluded: bool = False
    tags: tuple[str, ...] = ()
    decision: int | None = None  # the latest decision about the image
    name: str = ""  # the label's class name
    meta: dict[str, str] = field(default_factory=dict)  # per-image metadata


@dataclass(frozen=True)
class PixelBlock:
    """A chunk of selected images with their pixels, in selection order."""

    ids: npt.NDArray[np.int64]
    dataset_ids: npt.NDArray[np.int64]
    splits: list[str]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]  # current (the source's with ``original_labels``)
    sha256: list[str]
    pixels: npt.NDArray[np.uint8]  # (n, height, width)
    original_labels: npt.NDArray[np.int64]
    decisions: npt.NDArray[np.int64]  # the latest decision per image, 0 for none

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DatasetSummary:
    name: str
    created_at: str
    splits: dict[str, int]
    label_counts: dict[str, list[int]]  # per split, one count per label of ``labels``
    sources: list[dict[str, Any]] = field(default_factory=list)
    genuine: str | None = None  # e.g. "mnist" when every source is a genuine file of it
    labels: list[int] = field(default_factory=list)  # the label set's numbers
    label_names: list[str] = field(default_factory=list)  # and their class names
    label_set: str | None = None  # where the names came from ("fashion-mnist", ...)
    unlabeled: dict[str, int] = field(default_factory=dict)  # per split, images without one


def list_datasets(session: Session, *, counts: bool = True) -> list[DatasetSummary]:
    """Every dataset with its splits, per-label counts and sources
    (``counts=False``: without the counts; they come from the ``label_counts`` summary)."""
    summaries: list[DatasetSummary] = []
    for dataset in session.scalars(select(Dataset).order_by(bytewise(Dataset.name))):
        counted = (
            session.execute(  # the source's labels, from the summary the store keeps
                select(LabelCount.split, LabelCount.label, func.sum(LabelCount.n))
                .where(LabelCount.dataset_id == dataset.id)
                .group_by(LabelCount.split, LabelCount.label)
                .order_by(bytewise(LabelCount.split), LabelCount.label)
            ).all()
            if counts
            else []
        )
        labels_of = label_set(session, dataset.id)
        splits, labels, unlabeled = count_by_label(counted, labels_of)
        sources = session.scalars(
            select(Source).where(Source.dataset_id == dataset.id).order_by(Source.id)
        ).all()
        kinds = {source.genuine.split("/")[0] if source.genuine else None for source in sources}
        genuine = kinds.pop() if len(kinds) == 1 else None
        summaries.append(
            DatasetSummary(
                name=dataset.name,
                created_at=dataset.created_at.isoformat(),
                splits=splits,
                label_counts=labels,
                sources=[
                    {
                        "uri": s.uri,
                        "format": s.format,
                        "role": s.role,
                        "split": s.split,
                        "size": s.size,
                        "sha256": s.sha256,
                        "md5": s.md5,
                        "file_md5": s.file_md5,
                        "file_sha256": s.file_sha256,
                        "genuine": s.genuine,
                        "note": s.note,
                        "ingested_at": s.ingested_at.isoformat(),
                    }
                    for s in sources
                ],
                genuine=genuine,
                labels=list(labels_of.numbers),
                label_names=list(labels_of.names),
                label_set=dataset.label_set,
                unlabeled=unlabeled,
            )
        )
    return summaries


def list_exports(session: Session) -> list[dict[str, Any]]:
    """Every export, newest first, with the number of files on record for it and how
    many decisions about its images came after it (non-zero: out of date)."""
    from catalog.counting import decisions_since  # query imports this module

    files = (
        select(ExportedFile.export_id, func.count().label("files"))
        .group_by(ExportedFile.export_id)
        .subquery()
    )
    query = (
        select(Export, func.coalesce(files.c.files, 0))
        .outerjoin(files, files.c.export_id == Export.id)
        .order_by(Export.id.desc())
    )
    return [
        {
            "id": export.id, "created_at": export.created_at.isoformat(), "root": export.root,
            "output": export.output, "layout": export.layout, "format": export.format,
            "count": export.count,
            "written": export.written, "files": int(n), "selection": export.selection,
            "decision_id": export.decision_id,
            "decisions_since": decisions_since(session, export),
        }
        for export, n in session.execute(query)
    ]  # fmt: skip
