"""Tables of curation decisions: the append-only log, and the current state
derived from it.

``decisions`` is the history: one row per decision, never updated or deleted
(an undo is a new row that points at the decision it reverts). ``image_state``
and ``image_tags`` hold what the log adds up to for each image that has a
decision (current label, excluded or not, tags on it, the latest decision);
they are written in the same transaction as the log and can be rebuilt from it
(:func:`catalog.curation.log.rebuild_state`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base, utcnow
from catalog.db.types import LABEL, UTCDateTime

#: What a decision can do to an image.
ACTIONS = ("relabel", "exclude", "include", "tag", "untag")


class Decision(Base):
    """One decision about one image: who, when, what, and a note."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_image_id_id", "image_id", "id"),
        Index("ix_decisions_created_at", "created_at"),
        Index("ix_decisions_set_id", "set_id"),
    )

    # Ids are given in order under the decision lock, so id order is the order
    # in which decisions took effect, on every backend.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # one of ACTIONS
    label: Mapped[int | None] = mapped_column(LABEL)  # relabel: the new label
    tag: Mapped[str | None] = mapped_column(String(64))  # tag / untag: the tag's name
    note: Mapped[str | None] = mapped_column(Text)  # why (an exclusion's reason)
    author: Mapped[str] = mapped_column(String(64))  # who (--by)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    undoes: Mapped[int | None] = mapped_column(Integer)  # the decision this one reverts
    # Decisions recorded together as one set (a grid selection) share the id of the
    # set's first decision; None for a decision recorded on its own.
    set_id: Mapped[int | None] = mapped_column(Integer)


class ImageState(Base):
    """What the decisions about one image add up to (only images with decisions).

    It repeats where the image is and the source's label (which never change),
    so that counts correct for decisions from this small table alone.
    """

    __tablename__ = "image_state"
    __table_args__ = (Index("ix_image_state_dataset_id_split", "dataset_id", "split"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[int | None] = mapped_column(LABEL)  # None: the source's label stands
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    decision_id: Mapped[int] = mapped_column(Integer)  # the latest decision about the image
    dataset_id: Mapped[int] = mapped_column(Integer)  # = images.dataset_id
    split: Mapped[str] = mapped_column(String(32))  # = images.split
    index: Mapped[int] = mapped_column("idx", Integer)  # = images.idx
    source_label: Mapped[int | None] = mapped_column(LABEL)  # = images.label


class ImageTag(Base):
    """A tag currently on an image."""

    __tablename__ = "image_tags"
    __table_args__ = (Index("ix_image_tags_tag_image_id", "tag", "image_id"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
