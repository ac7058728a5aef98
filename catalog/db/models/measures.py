"""Per-image measures an audit keeps, so that a later audit reads them back instead of
computing them again: what a check derives from an image's pixels alone (its ink
measures, its identity against a shipped reference). Images never change their pixels,
so a kept measure stays true; a new method or version gets a new ``kind``."""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base


class ImageMeasure(Base):
    """One image's measure of one ``kind`` (e.g. ``ink-v1``, ``identity-mnist-signature-v1``).

    ``value`` holds a fixed-size little-endian record whose layout the kind names
    (see :mod:`catalog.audit.kept_ink` and :mod:`catalog.identity.kept`).
    """

    __tablename__ = "image_measures"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(48), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
