"""What an audit check keeps of its own work for the next audit of the same dataset.

Unlike ``image_measures`` (one record per image, true for as long as its pixels are),
a kept state belongs to one check of one dataset as a whole: the images it searched,
the pairs it confirmed, its fitted model, its search index. The next audit reuses it
only when ``key`` (the check's method, its constants and what it was run on) is the
same, and searches or scores only what changed since.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base


class KeptState(Base):
    """One part of one named blob of a check's kept state (see :mod:`catalog.audit.kept_state`).

    A blob larger than a part (a search index of a million images) is split over rows
    numbered by ``part`` from 0.
    """

    __tablename__ = "kept_states"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    check: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[bytes] = mapped_column(LargeBinary)
