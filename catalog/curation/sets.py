"""Decision sets: one action on many images, recorded together and undone together.

A grid selection tagged, untagged, excluded, included or relabelled in one go is a
decision set: :func:`set_changes` builds one change per image, and
:func:`catalog.curation.decisions.record` (``as_set=True``) gives every decision of
the batch the set's id, which is the id of its first decision. :func:`undo_set_changes`
reverts every decision of a set that is not already undone, newest first; the undo is
recorded as a set of its own, so it can be undone in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.curation.decisions import Change, check_label, check_tag
from catalog.curation.log import undo_change, untag_changes
from catalog.db.models.decisions import Decision
from catalog.errors import DecisionError

#: What a decision set may do to each image of a selection.
SET_ACTIONS = ("tag", "untag", "exclude", "include", "relabel")
#: The most images one decision set may name.
MAX_SET = 10_000


def set_changes(
    session: Session,
    image_ids: Sequence[int],
    action: str,
    *,
    label: int | str | None = None,
    tag: str | None = None,
    note: str | None = None,
) -> list[Change]:
    """One ``action`` change for each of ``image_ids`` (catalog ids).

    Raises :class:`DecisionError` for an unknown action, a missing tag or label, a
    label outside the dataset's label set, or more than :data:`MAX_SET` images.
    """
    if action not in SET_ACTIONS:
        msg = f"Unknown action {action[:40]!r} for a decision set: expected one of {', '.join(SET_ACTIONS)}"
        raise DecisionError(msg)
    if not image_ids:
        msg = "A decision set names at least one image"
        raise DecisionError(msg)
    if len(image_ids) > MAX_SET:
        msg = f"A decision set names at most {MAX_SET:,} images, got {len(image_ids):,}"
        raise DecisionError(msg)
    if action in ("tag", "untag"):
        if tag is None:
            msg = f"{action} needs a tag name"
            raise DecisionError(msg)
        check_tag(tag)
        if action == "untag":
            return untag_changes(session, image_ids, tag, note)
        return [Change(image, "tag", tag=tag, note=note) for image in image_ids]
    if action == "relabel":
        if label is None:
            msg = "relabel needs a label"
            raise DecisionError(msg)
        return [
            Change(image, "relabel", label=check_label(session, image, label), note=note)
            for image in image_ids
        ]
    return [Change(image, action, note=note) for image in image_ids]


def undo_set_changes(session: Session, set_id: int, note: str | None = None) -> list[Change]:
    """The changes that revert every decision of set ``set_id`` not already undone.

    Raises :class:`DecisionError` when no decision has that set id, or all are undone.
    """
    members = list(
        session.scalars(select(Decision.id).where(Decision.set_id == set_id).order_by(Decision.id))
    )
    if not members:
        msg = f"No decision set #{set_id} in the catalog"
        raise DecisionError(msg)
    undone = set(session.scalars(select(Decision.undoes).where(Decision.undoes.in_(members))))
    open_ = [decision for decision in members if decision not in undone]
    if not open_:
        msg = f"Decision set #{set_id} is undone already"
        raise DecisionError(msg)
    why = note or f"undo set #{set_id}"
    return [undo_change(session, decision, why) for decision in reversed(open_)]
