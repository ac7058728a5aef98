"""Which images a selection holds, as SQL: the filters every consumer shares.

:func:`selection_query` compiles a :class:`~catalog.selection.Selection`'s filters (all
but sampling) to one ``SELECT`` with bound parameters; :data:`CURRENT_LABEL` is the one
expression for an image's current label. Above it, :mod:`catalog.select.ids` draws
samples, :mod:`catalog.select.counts` counts, :mod:`catalog.select.reads` reads pixels
and :mod:`catalog.select.listings` lists rows. This module imports neither numpy nor
Pillow, so ``mnist-catalog count`` starts without them (``tests/test_cli_startup.py``).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageState, ImageTag
from catalog.db.models.images import Dataset, Image
from catalog.db.models.versions import Version, VersionImage
from catalog.db.types import bytewise
from catalog.errors import DatasetNotFoundError, SelectionError, VersionError
from catalog.facts.label_sets import label_set
from catalog.select.groups import filter_metadata
from catalog.select.versioned import check_pinned, version_key
from catalog.selection import Selection

__all__ = [
    "CURRENT_LABEL",
    "POSITION",
    "dataset_id",
    "decision_filters",
    "is_contiguous",
    "label_column",
    "resolve_labels",
    "selection_dataset",
    "selection_query",
    "state_columns",
    "with_state",
]

AnySelect: TypeAlias = Select[*tuple[Any, ...]]

#: The index column, labelled so rows expose it as ``row.idx`` (``Row.index`` is
#: the tuple method).
POSITION = Image.index.label("idx")
#: The current label: the latest relabel decision, else the source's label. The
#: one place that knows it; every query that reads or filters labels outer-joins
#: ``image_state`` (see :func:`with_state`) and uses this expression.
CURRENT_LABEL: ColumnElement[int | None] = func.coalesce(ImageState.label, Image.label)


def dataset_id(session: Session, name: str | None) -> int:
    """The id of dataset ``name``; with None, of the only dataset in the catalog."""
    if name is None:
        rows = session.execute(select(Dataset.id, Dataset.name).limit(2)).all()
        if len(rows) == 1:
            return int(rows[0].id)
        if not rows:
            msg = "The catalog has no datasets yet: run `mnist-catalog ingest SOURCE` first"
            raise DatasetNotFoundError(msg)
        names = ", ".join(sorted(session.scalars(select(Dataset.name))))
        msg = f"The catalog has several datasets ({names}): pass --dataset NAME"
        raise SelectionError(msg)
    found = session.scalar(select(Dataset.id).where(Dataset.name == name))
    if found is None:
        names = ", ".join(sorted(session.scalars(select(Dataset.name)))) or "none"
        msg = f"No dataset named {name!r} in the catalog (datasets: {names})"
        raise DatasetNotFoundError(msg)
    return int(found)


def selection_dataset(session: Session, selection: Selection) -> int:
    """The id of the selection's dataset: a version's own (by name: a dataset deleted and
    ingested again is found, and its pixels checked), or :func:`dataset_id`'s."""
    if selection.version is None:
        return dataset_id(session, selection.dataset)
    row = session.execute(
        select(Version.dataset).where(Version.name == selection.version)
    ).one_or_none()
    if row is None:
        names = ", ".join(session.scalars(select(Version.name).order_by(Version.id))) or "none"
        msg = f"No version named {selection.version!r} in the catalog (versions: {names})"
        raise VersionError(msg)
    if selection.dataset is not None and selection.dataset != row.dataset:
        msg = f"Version {selection.version!r} is of dataset {row.dataset!r}, not {selection.dataset!r}"
        raise SelectionError(msg)
    found = session.scalar(select(Dataset.id).where(Dataset.name == row.dataset))
    if found is None:
        msg = f"Version {selection.version!r} is of dataset {row.dataset!r}, not in the catalog"
        raise VersionError(msg)
    return int(found)


def selection_query(
    session: Session, selection: Selection, part: str = "all"
) -> tuple[int, AnySelect]:
    """The id query for the filters that SQL applies (all but sampling).

    ``part="plain"`` ignores decisions: the source's labels, no curation
    filters, no join (see :mod:`catalog.select.counts`). A selection within a
    version joins the version's images and refuses one whose pixels changed
    (:func:`check_pinned`).
    """
    ds = selection_dataset(session, selection)
    if selection.version is not None:
        check_pinned(session, selection, ds)
        if part == "plain":
            part = "all"  # a version's labels are its own: no shortcut through the source's
    missing = [
        split
        for split in selection.splits
        if session.scalar(
            select(Image.id).where(Image.dataset_id == ds, Image.split == split).limit(1)
        )
        is None
    ]  # one index probe per split, not a scan of the dataset
    if missing:
        present = set(session.scalars(select(Image.split).where(Image.dataset_id == ds).distinct()))
        msg = (
            f"Unknown split {missing[0]!r} in dataset {selection.dataset or ''!r}: "
            f"expected one of {', '.join(sorted(present)) or 'none'}"
        ).replace(" in dataset ''", "")
        raise SelectionError(msg)
    plain = part == "plain"
    label = Image.label.expression if plain else label_column(selection)
    query: AnySelect = select(Image.id, label.label("label"))
    if not plain:
        query = with_state(query, selection)
    query = query.where(Image.dataset_id == ds)
    if selection.splits:
        query = query.where(Image.split.in_(selection.splits))
    if selection.labels:
        query = query.where(label.in_(resolve_labels(session, ds, selection.labels)))
    if selection.unlabeled:
        query = query.where(label.is_(None))
    query = filter_metadata(query, selection.where)
    if not plain:
        query = decision_filters(query, selection)
    if selection.index_range is not None:
        start, stop = selection.index_range
        query = query.where(Image.index >= start, Image.index < stop)
    return ds, query.order_by(bytewise(Image.split), Image.index)


def label_column(selection: Selection) -> ColumnElement[int | None]:
    """The label ``selection`` filters and reports: the current one, the source's, or
    the one its version froze (the query joins the version, :func:`with_state`)."""
    if selection.original_labels:
        return Image.label.expression
    if selection.version is not None:
        return VersionImage.label.expression
    return CURRENT_LABEL


def with_state(query: AnySelect, selection: Selection | None = None) -> AnySelect:
    """``query`` with each image's decision state outer-joined (NULLs: no decisions),
    and, for a selection within a version, joined to the version's images (only
    they pass; their frozen labels and decisions are :data:`VersionImage`'s)."""
    query = query.join_from(Image, ImageState, ImageState.image_id == Image.id, isouter=True)
    if selection is not None and selection.version is not None:
        vi = VersionImage
        query = query.join_from(
            Image,
            vi,
            and_(
                vi.version_id == version_key(selection.version),
                vi.split == Image.split,
                vi.index == Image.index,
                vi.sha256 == Image.sha256,
            ),
        )
    return query


def decision_filters(query: AnySelect, selection: Selection, image_id: Any = Image.id) -> AnySelect:
    """The curation filters: exclusion, tags, relabelled (``query`` joins the state;
    ``image_id`` is the column naming the image)."""
    if selection.version is not None:
        pass  # a version's images are the version's, excluded since or not
    elif selection.excluded == "omit":
        query = query.where(or_(ImageState.excluded.is_(None), ImageState.excluded.is_(False)))
    elif selection.excluded == "only":
        query = query.where(ImageState.excluded.is_(True))
    for tag in selection.tags:
        query = query.where(image_id.in_(select(ImageTag.image_id).where(ImageTag.tag == tag)))
    for tag in selection.without_tags:
        query = query.where(image_id.not_in(select(ImageTag.image_id).where(ImageTag.tag == tag)))
    if selection.relabelled and selection.version is not None:
        frozen = func.coalesce(VersionImage.label, -1)
        query = query.where(frozen != func.coalesce(Image.label, -1))
    elif selection.relabelled:
        query = query.where(ImageState.label.is_not(None))
    return query


def is_contiguous(selection: Selection) -> bool:
    """Whether the selection is its filters alone (no sample, limit or offset)."""
    return not selection.is_random and selection.limit is None and not selection.offset


def resolve_labels(session: Session, dataset_id: int, labels: tuple[int | str, ...]) -> list[int]:
    """Label numbers for numbers or class names, checked against the dataset's set."""
    labels_of = label_set(session, dataset_id)
    return [labels_of.parse(str(label)) for label in labels]


def state_columns(selection: Selection) -> tuple[Any, ...]:
    """The label, the source's label, excluded and latest decision (state joined, and
    the version: its images' decisions are those they had when it was frozen)."""
    decision = ImageState.decision_id if selection.version is None else VersionImage.decision_id
    return (
        label_column(selection).label("label"), Image.label.label("original_label"),
        ImageState.excluded, decision.label("decision"),
    )  # fmt: skip
