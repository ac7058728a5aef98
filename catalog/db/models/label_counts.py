"""How many images each (dataset, split, source label) holds, kept beside ``images``.

Images never change after an ingest: a split is replaced whole and a dataset goes
with its images (FK cascade). So the counts are rewritten for the splits an ingest
touches, in its transaction (:func:`catalog.facts.label_counts.refresh_label_counts`), and a
count reads a few rows here instead of an index entry per image.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base
from catalog.db.types import LABEL


class LabelCount(Base):
    """``n`` images of ``dataset_id``'s ``split`` carry source label ``label``
    (None: published without a label). Decisions are not counted here."""

    __tablename__ = "label_counts"
    __table_args__ = (Index("ix_label_counts_dataset_split_label", "dataset_id", "split", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(32))
    label: Mapped[int | None] = mapped_column(LABEL)
    n: Mapped[int] = mapped_column(Integer)
