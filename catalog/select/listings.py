"""Listings: the selected images as rows (no pixels), the datasets with their counts,
and the exports with how out of date each is."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageTag
from catalog.db.models.exports import Export, ExportedFile
from catalog.db.models.images import Dataset, Image, Source
from catalog.db.models.label_counts import LabelCount
from catalog.db.types import bytewise
from catalog.facts.label_sets import LabelSet, label_set
from catalog.facts.metadata import metadata_of
from catalog.select.counts import decisions_since
from catalog.select.filters import POSITION, state_columns, with_state
from catalog.select.ids import id_chunks, select_ids
from catalog.select.records import ImageRow
from catalog.selection import Selection


def iter_rows(session: Session, selection: Selection) -> Iterator[ImageRow]:
    """Stream the selected images as rows (no pixels), with their exported paths."""
    yield from rows_of_ids(session, select_ids(session, selection), selection)


def rows_of_ids(
    session: Session, ids: npt.NDArray[np.int64], selection: Selection | None = None
) -> Iterator[ImageRow]:
    """The rows of images ``ids`` (catalog ids), in that order, with their state, tags,
    metadata and exported paths; ids not in the catalog are left out. ``selection``
    says which label to report (the current one unless it asks for the source's)."""
    columns = state_columns(selection or Selection())
    sets: dict[int, LabelSet] = {}
    for chunk in id_chunks(ids):
        id_list = chunk.tolist()
        query = (
            with_state(
                select(
                    Dataset.name,
                    Image.dataset_id,
                    Image.id,
                    Image.split,
                    POSITION,
                    *columns,
                    Image.sha256,
                ),
                selection,
            )
            .join(Dataset, Dataset.id == Image.dataset_id)
            .where(Image.id.in_(id_list))
        )  # fmt: skip
        rows = {row.id: row for row in session.execute(query)}
        tags: dict[int, list[str]] = {}
        tag_query = select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(id_list))
        for image_id, tag in session.execute(tag_query.order_by(ImageTag.tag)):
            tags.setdefault(image_id, []).append(tag)
        meta = metadata_of(session, id_list)
        paths: dict[int, list[str]] = {}
        file_query = (
            select(ExportedFile.image_id, ExportedFile.path)
            .where(ExportedFile.image_id.in_(id_list))
            .order_by(ExportedFile.path)
        )
        for image_id, path in session.execute(file_query):
            paths.setdefault(image_id, []).append(path)
        for image_id in id_list:
            if image_id not in rows:
                continue
            row = rows[image_id]
            if row.dataset_id not in sets:
                sets[row.dataset_id] = label_set(session, row.dataset_id)
            yield ImageRow(
                row.id, row.name, row.split, row.idx, row.label, row.sha256,
                tuple(paths.get(image_id, ())), row.original_label, bool(row.excluded),
                tuple(tags.get(image_id, ())), row.decision, sets[row.dataset_id].name(row.label),
                meta.get(image_id, {}),
            )  # fmt: skip


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


def count_by_label(
    counts: Sequence[Any], labels_of: LabelSet
) -> tuple[dict[str, int], dict[str, list[int]], dict[str, int]]:
    """(split, label, n) rows to images per split, per-label lists in the set's
    order (a label outside the set is added), and unlabeled images per split."""
    numbers = list(labels_of.numbers)
    extra = sorted({label for _, label, _ in counts if label is not None} - set(numbers))
    numbers += extra
    position = {number: i for i, number in enumerate(numbers)}
    splits: dict[str, int] = {}
    per_label: dict[str, list[int]] = {}
    unlabeled: dict[str, int] = {}
    for split, label, n in counts:
        splits[split] = splits.get(split, 0) + n
        row = per_label.setdefault(split, [0] * len(numbers))
        if label is None:
            unlabeled[split] = n
        else:
            row[position[label]] = n
    return splits, per_label, unlabeled


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
            "id": export.id, "created_at": export.created_at.isoformat(timespec="seconds"),
            "root": export.root,
            "output": export.output, "layout": export.layout, "format": export.format,
            "count": export.count,
            "written": export.written, "files": int(n), "selection": export.selection,
            "decision_id": export.decision_id,
            "decisions_since": decisions_since(session, export),
        }
        for export, n in session.execute(query)
    ]  # fmt: skip
