"""Curation decisions: relabel, exclude / include, tag / untag, and undo.

Decisions never overwrite. ``images.label`` keeps what the source said; each
decision is a row of the append-only ``decisions`` log (who, when, what, a
note), and reverting one is a new decision that says which one it undoes. The
tables ``image_state`` and ``image_tags`` hold what the log adds up to, written
in the same transaction as the log; :func:`rebuild_state` derives them from the
log alone. :mod:`catalog.select.filters` reads them to give every consumer the current
label (see :data:`catalog.select.filters.CURRENT_LABEL`).

Decisions are recorded under a lock (SQLite's write lock, a table lock on
PostgreSQL) and numbered in that order, so two processes deciding at once both
land, one after the other. A batch lands whole or not at all.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from catalog.db.bulk import bulk_executor, bulk_inserter
from catalog.db.models.base import utcnow
from catalog.db.models.decisions import ACTIONS, Decision, ImageState, ImageTag
from catalog.db.models.images import Dataset, Image
from catalog.errors import DecisionError, ImageNotFoundError
from catalog.facts.label_sets import label_set
from catalog.select.filters import dataset_id

#: Images per IN (...) list when reading or writing state.
CHUNK = 4000
#: Above this many images, images and state are read by one scan, not IN (...) lists.
MANY = 500
#: ``session.info`` key: image facts :func:`lookup` read, for :func:`load_states`.
FACTS = "catalog.curation.decisions.facts"
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class Change:
    """One decision to record: an action on one image (by catalog id)."""

    image_id: int
    action: str
    label: int | None = None  # relabel
    tag: str | None = None  # tag / untag
    note: str | None = None
    author: str | None = None  # None: the batch's author
    undoes: int | None = None


@dataclass
class State:
    """What the decisions about one image add up to."""

    original: int | None  # the source's label (None: published without one)
    label: int | None = None  # None: the source's label stands
    excluded: bool = False
    tags: set[str] = field(default_factory=set)
    decision_id: int | None = None
    place: tuple[int, str, int] = (0, "", 0)  # dataset id, split, index

    @property
    def current(self) -> int | None:
        return self.original if self.label is None else self.label


@dataclass
class Summary:
    """What applying a batch of decisions does (or would do, in a dry run)."""

    recorded: int = 0  # decisions written to the log
    unchanged: int = 0  # asked for, but the image already was so: not recorded
    relabelled: int = 0
    excluded: int = 0
    included: int = 0
    tagged: int = 0
    untagged: int = 0
    first_id: int | None = None
    last_id: int | None = None
    dry_run: bool = False
    set_id: int | None = None  # the decision set the batch was recorded as (if one)

    def describe(self) -> str:
        """One line: what changes."""
        parts = [
            f"{n} {word}"
            for n, word in (
                (self.relabelled, "relabelled"), (self.excluded, "excluded"),
                (self.included, "included"), (self.tagged, "tagged"), (self.untagged, "untagged"),
            )
            if n
        ]  # fmt: skip
        verb = "Would record" if self.dry_run else "Recorded"
        ids = ""
        if self.first_id and not self.dry_run:
            last = f"-#{self.last_id}" if self.last_id != self.first_id else ""
            ids = f" (#{self.first_id}{last})"
        what = ", ".join(parts) or "no changes"
        same = f"; {self.unchanged} unchanged" if self.unchanged else ""
        plural = "" if self.recorded == 1 else "s"
        return f"{verb} {self.recorded} decision{plural}{ids}: {what}{same}"


def default_author() -> str:
    """The login name of whoever runs this process (``unknown`` without one)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def check_tag(name: str) -> str:
    """A tag name: letters, digits, ``_ . -``, at most 64 characters."""
    if not TAG_PATTERN.fullmatch(name):
        msg = (
            f"Invalid tag name {name!r}: expected letters, digits, '_', '.' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
        raise DecisionError(msg)
    return name


def parse_ref(text: str) -> tuple[str, int]:
    """``SPLIT:INDEX`` as ``(split, index)``.

    >>> parse_ref("test:1530")
    ('test', 1530)
    """
    split, sep, index = text.strip().rpartition(":")
    if not sep or not split or not index.isdigit():
        msg = f"Image {text!r} is not SPLIT:INDEX (for example test:1530)"
        raise DecisionError(msg)
    return split, int(index)


def lookup(
    session: Session, ds: int, refs: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The catalog ids of those images ``(split, index)`` of dataset ``ds`` that exist."""
    found: dict[tuple[str, int], int] = {}
    by_split: dict[str, set[int]] = {}
    for split, index in refs:
        by_split.setdefault(split, set()).add(index)
    for split, indices in by_split.items():
        wanted = sorted(indices)
        if len(wanted) > MANY:  # one scan of the split beats long IN lists
            query = select(Image.id, Image.index, Image.label).where(
                Image.dataset_id == ds, Image.split == split
            )
            rows = session.connection().execute(query).fetchall()
            # Keep what load_states needs, so it need not scan again (same transaction).
            facts = session.info.setdefault(FACTS, {})
            for image, index, label in rows:
                if index in indices:
                    found[split, index] = image
                    facts[image] = (label, (ds, split, index))
            continue
        for start in range(0, len(wanted), CHUNK):
            listed = select(Image.id, Image.index).where(
                Image.dataset_id == ds,
                Image.split == split,
                Image.index.in_(wanted[start : start + CHUNK]),
            )
            found.update({(split, index): image for image, index in session.execute(listed)})
    return found


def missing_image(session: Session, ds: int, split: str, index: int) -> ImageNotFoundError:
    name = session.scalar(select(Dataset.name).where(Dataset.id == ds))
    msg = f"No image {split}:{index} in dataset {name}"
    return ImageNotFoundError(msg)


def resolve(session: Session, dataset: str | None, refs: Sequence[tuple[str, int]]) -> list[int]:
    """The catalog ids of images named ``(split, index)`` in ``dataset``, in order."""
    ds = dataset_id(session, dataset)
    found = lookup(session, ds, refs)
    for ref in refs:
        if ref not in found:
            raise missing_image(session, ds, *ref)
    return [found[ref] for ref in refs]


def check_label(session: Session, image_id: int, label: int | str) -> int:
    """``label`` as a number of the image's dataset's label set (a name is parsed)."""
    ds = session.scalar(select(Image.dataset_id).where(Image.id == image_id))
    if ds is None:
        msg = f"No image with catalog id {image_id}"
        raise ImageNotFoundError(msg)
    labels = label_set(session, ds)
    if isinstance(label, str):
        return labels.parse(label)
    if label not in labels:
        msg = f"Label {label} is not in the label set: expected one of {labels.describe()}"
        raise DecisionError(msg)
    return label


# --- recording --------------------------------------------------------------


def lock(session: Session) -> None:
    """Take the decision lock for the rest of the transaction.

    SQLite: the write lock (BEGIN IMMEDIATE) serialises writers already.
    PostgreSQL: a table lock that only decision writers take (reads go on).
    """
    if not session.in_transaction():
        session.connection(execution_options={"sqlite_immediate": True})
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql("LOCK TABLE decisions IN SHARE ROW EXCLUSIVE MODE")


def load_states(session: Session, image_ids: Iterable[int]) -> dict[int, State]:
    """The current state of each image (from ``image_state`` and ``image_tags``)."""
    ids = set(image_ids)
    connection = session.connection()
    known: dict[int, tuple[int, tuple[int, str, int]]] = session.info.pop(FACTS, {})
    states = {image: State(known[image][0], place=known[image][1]) for image in ids & known.keys()}
    if len(ids) > MANY:  # one scan of the (covering) label index beats long IN lists
        originals = select(Image.id, Image.label, Image.dataset_id, Image.split, Image.index)
        state_query = select(ImageState.image_id, ImageState.label, ImageState.excluded,
                             ImageState.decision_id)  # fmt: skip
        tag_query = select(ImageTag.image_id, ImageTag.tag)
    else:
        listed = sorted(ids)
        originals = select(Image.id, Image.label, Image.dataset_id, Image.split, Image.index).where(
            Image.id.in_(listed)
        )
        state_query = select(ImageState.image_id, ImageState.label, ImageState.excluded,
                             ImageState.decision_id).where(ImageState.image_id.in_(listed))  # fmt: skip
        tag_query = select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(listed))
    if len(states) < len(ids):
        states.update(
            {
                image: State(original, place=(ds, split, index))
                for image, original, ds, split, index in connection.execute(originals).fetchall()
                if image in ids
            }
        )
    for image, label, excluded, decision in connection.execute(state_query):
        if image in states:
            state = states[image]
            state.label, state.excluded, state.decision_id = label, bool(excluded), decision
    for image, tag in connection.execute(tag_query):
        if image in states:
            states[image].tags.add(tag)
    return states


def fold(state: State, change: Change) -> bool:
    """Apply ``change`` to ``state`` in place; False when it changes nothing."""
    if change.action == "relabel":
        # A relabel to None only comes from undoing the first relabel of an image
        # published without a label: back to the source, which had none.
        label = None if change.label == state.original else change.label
        if label == state.label:
            return False
        state.label = label
    elif change.action in ("exclude", "include"):
        excluded = change.action == "exclude"
        if excluded == state.excluded:
            return False
        state.excluded = excluded
    elif change.action in ("tag", "untag"):
        assert change.tag is not None
        if (change.tag in state.tags) == (change.action == "tag"):
            return False
        if change.action == "tag":
            state.tags.add(change.tag)
        else:
            state.tags.discard(change.tag)
    else:
        msg = f"Unknown action {change.action!r}: expected one of {', '.join(ACTIONS)}"
        raise DecisionError(msg)
    return True


def record(
    session: Session,
    changes: Sequence[Change],
    *,
    author: str | None = None,
    dry_run: bool = False,
    as_set: bool = False,
) -> Summary:
    """Record ``changes`` in order, all or nothing; returns what changed.

    With ``as_set`` the recorded decisions form one decision set: they share a
    ``set_id`` (the id of the set's first decision), and undoing the set reverts all.

    A change that would leave its image as it is (tagging a tagged image,
    relabelling to the current label) is counted as unchanged and not recorded.
    With ``dry_run`` nothing is written. The caller commits the session.
    """
    lock(session)
    who = author or default_author()
    states = load_states(session, (change.image_id for change in changes))
    fresh = {image for image, state in states.items() if state.decision_id is None}
    next_id = int(session.scalar(select(func.coalesce(func.max(Decision.id), 0))) or 0) + 1
    summary = Summary(dry_run=dry_run)
    rows: list[dict[str, object]] = []
    set_id = next_id if as_set else None
    touched: set[int] = set()
    now = utcnow()
    counter = {"relabel": "relabelled", "exclude": "excluded", "include": "included",
               "tag": "tagged", "untag": "untagged"}  # fmt: skip
    for change in changes:
        state = states[change.image_id]
        if not fold(state, change):
            summary.unchanged += 1
            continue
        decision = next_id + len(rows)
        state.decision_id = decision
        touched.add(change.image_id)
        setattr(summary, counter[change.action], getattr(summary, counter[change.action]) + 1)
        rows.append(
            {
                "id": decision, "image_id": change.image_id, "action": change.action,
                "label": change.label, "tag": change.tag, "note": change.note,
                "author": change.author or who, "created_at": now, "undoes": change.undoes,
                "set_id": set_id,
            }
        )  # fmt: skip
    summary.recorded = len(rows)
    if rows:
        summary.first_id, summary.last_id = next_id, next_id + len(rows) - 1
        summary.set_id = set_id
    if dry_run or not rows:
        return summary
    connection = session.connection()
    table = cast(Table, Decision.__table__)
    stamp = table.c.created_at.type.dialect_impl(connection.dialect).bind_processor(
        connection.dialect
    )
    columns = tuple(rows[0])
    if stamp is not None:
        for row in rows:
            row["created_at"] = stamp(row["created_at"])
    bulk_inserter(connection, table, columns)([tuple(row.values()) for row in rows])
    write_states(session, {image: states[image] for image in touched}, fresh)
    session.flush()
    return summary


def write_states(session: Session, states: dict[int, State], fresh: Collection[int] = ()) -> None:
    """Replace the state rows of these images with ``states`` (driver-level
    executemany); images in ``fresh`` had none."""
    connection = session.connection()
    keys = [(image,) for image in sorted(states) if image not in fresh]
    for table in (cast(Table, ImageTag.__table__), cast(Table, ImageState.__table__)):
        gone = delete(table).where(table.c.image_id == bindparam("image_id"))
        if keys:
            bulk_executor(connection, gone, ["image_id"])(keys)
    state_rows = [
        (image, s.label, s.excluded, s.decision_id, *s.place, s.original)
        for image, s in states.items()
        if s.decision_id is not None
    ]
    tag_rows = [(image, tag) for image, s in states.items() for tag in sorted(s.tags)]
    if state_rows:
        columns = ("image_id", "label", "excluded", "decision_id", "dataset_id", "split", "idx",
                   "source_label")  # fmt: skip
        bulk_inserter(connection, cast(Table, ImageState.__table__), columns)(state_rows)
    if tag_rows:
        tags = cast(Table, ImageTag.__table__)
        bulk_inserter(connection, tags, ("image_id", "tag"))(tag_rows)
