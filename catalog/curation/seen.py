"""Decisions that know what their author saw, and undo by author.

Two reviewers on one image: each decision may carry ``seen``, the id of the latest
decision about the image its author had in front of them (None: they saw none).
If a newer decision exists, :func:`check_seen` raises
:class:`~catalog.errors.StaleDecisionError` naming it, under the decision lock, so
nothing is recorded and the author can look again (HTTP's conditional requests:
``If-Match`` and 412, here 409 on the web).

:func:`latest_open_by` finds the decision an author's "undo" means: their own
latest decision about the image that nothing undid yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from catalog.curation.log import records_where
from catalog.db.models.decisions import Decision
from catalog.errors import StaleDecisionError


class Unchecked(Enum):
    """``seen`` not given: the decision is recorded whatever came before it."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED
#: What a decision's author saw: a decision id, None (no decision), or UNCHECKED.
Seen = int | None | Unchecked


def latest_ids(session: Session, image_ids: Sequence[int]) -> dict[int, int]:
    """The latest decision id of each of these images that has one."""
    query = (
        select(Decision.image_id, func.max(Decision.id))
        .where(Decision.image_id.in_(sorted(set(image_ids))))
        .group_by(Decision.image_id)
    )
    return {int(image): int(latest) for image, latest in session.execute(query)}


def check_seen(session: Session, image_ids: Sequence[int], seen: Seen) -> None:
    """Raise :class:`StaleDecisionError` if one of ``image_ids`` has a decision newer
    than ``seen``; call it under the decision lock, before recording."""
    if seen is UNCHECKED or not image_ids:
        return
    newer = [d for d in latest_ids(session, image_ids).values() if d > (seen or 0)]
    if not newer:
        return
    (latest,) = records_where(session, [Decision.id == max(newer)])
    what = latest.action + (f" to {latest.label}" if latest.action == "relabel" else "")
    what += f" {latest.tag}" if latest.tag else ""
    what += f" (undoing #{latest.undoes})" if latest.undoes else ""
    had = f"#{seen}" if seen else "no decision"
    msg = (
        f"{latest.split}:{latest.index} changed since you saw it: decision #{latest.id}, "
        f"{what} by {latest.by} at {latest.at.isoformat(timespec='seconds')} "
        f"(you had seen {had}); nothing recorded"
    )
    raise StaleDecisionError(msg, latest.to_json())


def latest_open_by(session: Session, image_id: int, author: str) -> int | None:
    """The id of ``author``'s latest decision about ``image_id`` that is not an undo
    and that no decision undid (None: there is none)."""
    undoing = aliased(Decision)
    undone = select(undoing.id).where(undoing.undoes == Decision.id).exists()
    query = select(func.max(Decision.id)).where(
        Decision.image_id == image_id,
        Decision.author == author,
        Decision.undoes.is_(None),
        ~undone,
    )
    found = session.scalar(query)
    return None if found is None else int(found)
