"""Tables of the MNIST family: label sets with class names, and per-image metadata.

``label_names`` holds one row per class of a dataset (its number and name);
``datasets.label_set`` says where the set came from (``digits``,
``fashion-mnist``, ``emnist-letters mapping``...). ``image_metadata`` holds the
attributes some sources carry per image (QMNIST's writer, a CSV's extra
columns) as (image, key, value) rows: the keys differ from source to source,
and every consumer filters or groups by one key at a time.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base


class LabelName(Base):
    """The name of one class of a dataset."""

    __tablename__ = "label_names"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


class ImageMetadata(Base):
    """One attribute of one image, as text (integers in their decimal form)."""

    __tablename__ = "image_metadata"
    __table_args__ = (Index("ix_image_metadata_key_value", "key", "value"),)

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
