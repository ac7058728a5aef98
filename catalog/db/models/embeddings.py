"""Per-image embeddings: one compact vector per image and method, reused by the audit's
near-duplicate search, the web view's neighbours and ``identify``."""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base


class Embedding(Base):
    """The embedding of one image by one method (``kind``, e.g. ``dct8-centred-blur1.2-v1``).

    ``vector`` holds the numbers as little-endian float16 (see :mod:`catalog.similarity.embed`).
    A new method gets a new ``kind``, so rows of an older one are never compared with it.
    """

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(48), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
