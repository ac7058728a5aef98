"""Reading the decision log, and moving decisions between catalogs as CSV.

``decisions --format csv`` writes the log in the format ``apply`` reads, so a
file of decisions made in one catalog can be applied to another:

    dataset,split,index,action,label,tag,note,by,at,id,undoes

``apply`` needs ``split`` and ``index``; ``action`` defaults to ``relabel``
(then ``label`` is needed); ``tag`` names the tag of ``tag``/``untag`` rows;
``dataset``, ``note`` and ``by`` are optional; ``at``, ``id`` and ``undoes``
belong to the catalog the file came from and are ignored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from catalog.curation.decisions import (
    CHUNK,
    Change,
    State,
    check_tag,
    fold,
    load_states,
    lock,
    lookup,
    missing_image,
    resolve,
    write_states,
)
from catalog.db.models.decisions import ACTIONS, Decision, ImageState, ImageTag
from catalog.db.models.images import Dataset, Image
from catalog.errors import CatalogError, DecisionError, UnknownTagError
from catalog.facts.label_sets import LabelSet, label_set
from catalog.select.filters import dataset_id

CSV_COLUMNS = ("dataset", "split", "index", "action", "label", "tag", "note", "by", "at", "id",
               "undoes")  # fmt: skip
IGNORED = {"at", "id", "undoes", "original_label"}


@dataclass(frozen=True)
class DecisionRecord:
    """A recorded decision, with the image it is about."""

    id: int
    dataset: str
    split: str
    index: int
    action: str
    label: int | None
    tag: str | None
    note: str | None
    by: str
    at: datetime
    undoes: int | None
    original_label: int
    set_id: int | None = None  # the decision set it belongs to (None: recorded alone)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


def _records(session: Session, where: Sequence[ColumnElement[bool]]) -> Iterator[DecisionRecord]:
    query = (
        select(
            Decision.id, Dataset.name, Image.split, Image.index, Decision.action, Decision.label,
            Decision.tag, Decision.note, Decision.author, Decision.created_at, Decision.undoes,
            Image.label.label("original"), Decision.set_id,
        )
        .join(Image, Image.id == Decision.image_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(*where)
        .order_by(Decision.id)
    )  # fmt: skip
    for row in session.execute(query):
        at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        yield DecisionRecord(*row[:9], at, row.undoes, row.original, row.set_id)


def records_where(session: Session, where: Sequence[ColumnElement[bool]]) -> list[DecisionRecord]:
    """The decisions matching ``where`` (conditions on :class:`Decision`), oldest first."""
    return list(_records(session, where))


def image_history(
    session: Session, dataset: str | None, split: str, index: int
) -> list[DecisionRecord]:
    """Every decision about one image, oldest first."""
    (image,) = resolve(session, dataset, [(split, index)])
    return list(_records(session, [Decision.image_id == image]))


def list_decisions(
    session: Session,
    *,
    dataset: str | None = None,
    since: datetime | None = None,
    by: str | None = None,
) -> list[DecisionRecord]:
    """The decision log, oldest first, optionally from ``since`` on and by one author."""
    where: list[ColumnElement[bool]] = []
    if dataset is not None:
        where.append(Image.dataset_id == dataset_id(session, dataset))
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        where.append(Decision.created_at >= since)
    if by is not None:
        where.append(Decision.author == by)
    return list(_records(session, where))


def parse_since(text: str) -> datetime:
    """``--since``: an ISO date or date and time (UTC unless it says otherwise)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"--since {text!r} is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        raise DecisionError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def decisions_csv(records: Sequence[DecisionRecord]) -> str:
    """The records as CSV in the format :func:`read_decisions` reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(
            (r.dataset, r.split, r.index, r.action, "" if r.label is None else r.label,
             r.tag or "", r.note or "", r.by, r.at.isoformat(), r.id,
             "" if r.undoes is None else r.undoes)
        )  # fmt: skip
    return buffer.getvalue()


@dataclass(frozen=True)
class _Row:
    line: int
    dataset: int
    split: str
    index: int
    action: str
    label: int | None
    tag: str | None
    note: str | None
    by: str | None


def read_decisions(session: Session, path: Path, dataset: str | None = None) -> list[Change]:
    """The decisions of a CSV file, checked row by row against the catalog.

    Raises
    ------
    DecisionError
        On the first bad row, naming the file and its line: unknown column or
        action, missing field, label outside the label set, unknown image,
        untag of a tag no image carries.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        msg = f"Cannot read decisions file {path}: {reason}"
        raise DecisionError(msg) from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    unknown = [c for c in columns if c not in CSV_COLUMNS and c not in IGNORED]
    if unknown or not {"split", "index"} <= set(columns):
        what = f"unknown column {unknown[0]!r}" if unknown else "no split and index columns"
        msg = f"{path} line 1: {what}: expected split,index and any of {', '.join(CSV_COLUMNS)}"
        raise DecisionError(msg)
    default = dataset_id(session, dataset) if dataset or "dataset" not in columns else None
    sets: dict[int, LabelSet] = {}
    ids: dict[str, int] = {}
    rows: list[_Row] = []
    for record in reader:
        line = reader.line_num
        try:
            rows.append(_parse_row(session, record, line, default, ids, sets))
        except CatalogError as exc:
            msg = f"{path} line {line}: {exc}"
            raise DecisionError(msg) from None
    found: dict[tuple[int, str, int], int] = {}
    for ds in {row.dataset for row in rows}:
        refs = [(row.split, row.index) for row in rows if row.dataset == ds]
        found.update({(ds, *ref): image for ref, image in lookup(session, ds, refs).items()})
    used = set(session.scalars(select(ImageTag.tag).distinct()))
    changes = []
    for row in rows:
        image = found.get((row.dataset, row.split, row.index))
        if image is None:
            msg = f"{path} line {row.line}: {missing_image(session, row.dataset, row.split, row.index)}"
            raise DecisionError(msg)
        if row.action == "tag":
            used.add(row.tag or "")
        if row.action == "untag" and row.tag not in used:
            msg = f"{path} line {row.line}: unknown tag {row.tag!r}: no image carries it"
            raise DecisionError(msg)
        changes.append(Change(image, row.action, row.label, row.tag, row.note, row.by))
    return changes


def _parse_row(
    session: Session, record: dict[str, str | None], line: int, default: int | None,
    ids: dict[str, int], sets: dict[int, LabelSet],
) -> _Row:  # fmt: skip
    def value(name: str) -> str:
        return (record.get(name) or "").strip()

    if None in record:
        msg = "more fields than the header has"
        raise DecisionError(msg)
    name = value("dataset")
    if name:
        if name not in ids:
            ids[name] = dataset_id(session, name)
        ds = ids[name]
    elif default is not None:
        ds = default
    else:
        ds = dataset_id(session, None)
    action = value("action") or "relabel"
    if action not in ACTIONS:
        msg = f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}"
        raise DecisionError(msg)
    index = value("index")
    if not value("split") or not index.isdigit():
        msg = f"expected a split and a whole-number index, found {value('split')!r}, {index!r}"
        raise DecisionError(msg)
    label = None
    if action == "relabel":
        if not value("label"):
            msg = "a relabel row needs a label"
            raise DecisionError(msg)
        if ds not in sets:
            sets[ds] = label_set(session, ds)
        label = sets[ds].parse(value("label"))
    tag = None
    if action in ("tag", "untag"):
        if not value("tag"):
            msg = f"a {action} row needs a tag"
            raise DecisionError(msg)
        tag = check_tag(value("tag"))
    return _Row(line, ds, value("split"), int(index), action, label, tag,
                value("note") or None, value("by") or None)  # fmt: skip


def untag_changes(
    session: Session, image_ids: Sequence[int], tag: str, note: str | None = None
) -> list[Change]:
    """Untag changes for those of ``image_ids`` that carry ``tag``.

    Raises :class:`UnknownTagError` when no image carries it, or none of these.
    """
    if session.scalar(select(ImageTag.image_id).where(ImageTag.tag == tag).limit(1)) is None:
        used = sorted(set(session.scalars(select(ImageTag.tag).distinct())))
        msg = f"Unknown tag {tag!r}: no image carries it (tags in use: {', '.join(used) or 'none'})"
        raise UnknownTagError(msg)
    carrying: set[int] = set()
    ids = sorted(set(image_ids))
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        carrying.update(
            session.scalars(
                select(ImageTag.image_id).where(ImageTag.tag == tag, ImageTag.image_id.in_(part))
            )
        )
    if not carrying:
        msg = f"Tag {tag!r} is not on any of the {len(ids)} images named"
        raise UnknownTagError(msg)
    return [Change(image, "untag", tag=tag, note=note) for image in image_ids if image in carrying]


def undo_change(session: Session, decision_id: int, note: str | None = None) -> Change:
    """The decision that reverts decision ``decision_id`` (relabel back, include, untag ...)."""
    target = session.get(Decision, decision_id)
    if target is None:
        last = session.scalar(select(func.max(Decision.id)))
        msg = f"No decision #{decision_id} in the catalog (decisions: #1-#{last or 0})"
        raise DecisionError(msg)
    why = note or f"undo #{decision_id}"
    if target.action == "relabel":
        before = session.scalar(
            select(Decision.label)
            .where(Decision.image_id == target.image_id, Decision.action == "relabel",
                   Decision.id < decision_id)
            .order_by(Decision.id.desc())
            .limit(1)
        )  # fmt: skip
        if before is None:
            before = session.scalar(select(Image.label).where(Image.id == target.image_id))
        return Change(target.image_id, "relabel", label=before, note=why, undoes=decision_id)
    opposite = {"exclude": "include", "include": "exclude", "tag": "untag", "untag": "tag"}
    return Change(
        target.image_id, opposite[target.action], tag=target.tag, note=why, undoes=decision_id
    )


def latest_decision(session: Session) -> int | None:
    """The id of the newest decision (the catalog's decision state), None before any."""
    value = session.scalar(select(func.max(Decision.id)))
    return None if value is None else int(value)


# --- the state is derived from the log ---------------------------------------


def replay(session: Session) -> dict[int, State]:
    """The state of every decided image, computed from the log alone."""
    states: dict[int, State] = {}
    query = (
        select(Decision.id, Decision.image_id, Decision.action, Decision.label, Decision.tag,
               Image.label.label("original"), Image.dataset_id, Image.split,
               Image.index.label("idx"))
        .join(Image, Image.id == Decision.image_id)
        .order_by(Decision.id)
    )  # fmt: skip
    for row in session.execute(query):
        place = (row.dataset_id, row.split, row.idx)
        state = states.setdefault(row.image_id, State(row.original, place=place))
        fold(state, Change(row.image_id, row.action, label=row.label, tag=row.tag))
        state.decision_id = row.id
    return states


def rebuild_state(session: Session) -> int:
    """Rewrite ``image_state`` and ``image_tags`` from the log; returns images with state."""
    lock(session)
    states = replay(session)
    session.execute(delete(ImageTag))
    session.execute(delete(ImageState))
    write_states(session, states)
    return len(states)


def stored_state(session: Session) -> dict[int, State]:
    """The state as the tables hold it (to compare with :func:`replay`)."""
    ids = session.scalars(select(ImageState.image_id)).all()
    return {image: replace(state) for image, state in load_states(session, ids).items()}


def reviewed_ids(session: Session) -> list[int]:
    """Images a person has looked at: relabelled, tagged ``reviewed``, or excluded.

    The label-error check does not flag these again.
    """
    query = (
        select(Decision.image_id)
        .where(Decision.action == "relabel")
        .union(
            select(ImageTag.image_id).where(ImageTag.tag == "reviewed"),
            select(ImageState.image_id).where(ImageState.excluded.is_(True)),
        )
    )
    return list(session.scalars(query))
