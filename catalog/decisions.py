"""Curation decisions: relabel, exclude / include, tag / untag, and undo.

Decisions never overwrite. ``images.label`` keeps what the source said; each
decision is a row of the append-only ``decisions`` log (who, when, what, a
note), and reverting one is a new decision that says which one it undoes. The
tables ``image_state`` and ``image_tags`` hold what the log adds up to, written
in the same transaction as the log; :func:`rebuild_state` derives them from the
log alone. :mod:`catalog.query` reads them to give every consumer the current
label (see :data:`catalog.query.CURRENT_LABEL`).

Decisions are recorded under a lock (SQLite's write lock, a table lock on
PostgreSQL) and numbered in that order, so two processes deciding at once both
land, one after the other. A batch lands whole or not at all.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from catalog.db import Dataset, Image, utcnow
from catalog.errors import DecisionError, ImageNotFoundError, UnknownTagError
from catalog.labelsets import label_set
from catalog.models.decisions import ACTIONS, Decision, ImageState, ImageTag
from catalog.query import dataset_id

#: Images per IN (...) list when reading or writing state.
CHUNK = 4000
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

    original: int  # the source's label
    label: int | None = None  # None: the source's label stands
    excluded: bool = False
    tags: set[str] = field(default_factory=set)
    decision_id: int | None = None

    @property
    def current(self) -> int:
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
        for start in range(0, len(wanted), CHUNK):
            query = select(Image.id, Image.index).where(
                Image.dataset_id == ds,
                Image.split == split,
                Image.index.in_(wanted[start : start + CHUNK]),
            )
            found.update({(split, index): image for image, index in session.execute(query)})
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
    ids = sorted(set(image_ids))
    states: dict[int, State] = {}
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = session.execute(
            select(Image.id, Image.label, ImageState.label, ImageState.excluded,
                   ImageState.decision_id)
            .outerjoin(ImageState, ImageState.image_id == Image.id)
            .where(Image.id.in_(part))
        )  # fmt: skip
        for image, original, label, excluded, decision in rows:
            states[image] = State(original, label, bool(excluded), set(), decision)
        tags = session.execute(
            select(ImageTag.image_id, ImageTag.tag).where(ImageTag.image_id.in_(part))
        )
        for image, tag in tags:
            states[image].tags.add(tag)
    return states


def fold(state: State, change: Change) -> bool:
    """Apply ``change`` to ``state`` in place; False when it changes nothing."""
    if change.action == "relabel":
        assert change.label is not None
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
) -> Summary:
    """Record ``changes`` in order, all or nothing; returns what changed.

    A change that would leave its image as it is (tagging a tagged image,
    relabelling to the current label) is counted as unchanged and not recorded.
    With ``dry_run`` nothing is written. The caller commits the session.
    """
    lock(session)
    who = author or default_author()
    states = load_states(session, (change.image_id for change in changes))
    next_id = int(session.scalar(select(func.coalesce(func.max(Decision.id), 0))) or 0) + 1
    summary = Summary(dry_run=dry_run)
    rows: list[dict[str, object]] = []
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
            }
        )  # fmt: skip
    summary.recorded = len(rows)
    if rows:
        summary.first_id, summary.last_id = next_id, next_id + len(rows) - 1
    if dry_run or not rows:
        return summary
    session.execute(insert(Decision), rows)
    write_states(session, {image: states[image] for image in touched})
    session.flush()
    return summary


def write_states(session: Session, states: dict[int, State]) -> None:
    """Replace the state rows of these images with ``states``."""
    ids = sorted(states)
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        session.execute(delete(ImageTag).where(ImageTag.image_id.in_(part)))
        session.execute(delete(ImageState).where(ImageState.image_id.in_(part)))
    state_rows = [
        {"image_id": image, "label": s.label, "excluded": s.excluded, "decision_id": s.decision_id}
        for image, s in states.items()
        if s.decision_id is not None
    ]
    tag_rows = [
        {"image_id": image, "tag": tag} for image, s in states.items() for tag in sorted(s.tags)
    ]
    if state_rows:
        session.execute(insert(ImageState), state_rows)
    if tag_rows:
        session.execute(insert(ImageTag), tag_rows)


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
