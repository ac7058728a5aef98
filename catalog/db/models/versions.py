"""Versions: a selection frozen with its labels, never edited (see :mod:`catalog.versions`).

``versions`` holds one row per frozen version: its name, its content id, who, when,
the position in the decision log it saw, its counts per split and the label set's
names. ``version_images`` holds its images, one row each: where the image is
(``split``, ``idx`` in the version's dataset), the sha256 of its pixels and its label
at the freeze. Images are found again by place, not by id, and their pixels checked
by digest: ``ingest --replace`` deletes rows and inserts new ones under new ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base, utcnow
from catalog.db.types import LABEL, UTCDateTime


class Version(Base):
    """One frozen version: a name, a content id and where it came from."""

    __tablename__ = "versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    dataset_id: Mapped[int] = mapped_column(Integer)  # no key: the version outlives a replace
    dataset: Mapped[str] = mapped_column(String(64))  # its name, hashed into the content id
    content_id: Mapped[str] = mapped_column(String(64), index=True)
    count: Mapped[int] = mapped_column(Integer)
    splits: Mapped[dict[str, int]] = mapped_column(JSON)  # images per split
    label_names: Mapped[dict[str, str]] = mapped_column(JSON)  # label number -> class name
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)  # the filters it was frozen from
    decision_id: Mapped[int | None] = mapped_column(Integer)  # the log's latest decision then
    note: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    imported: Mapped[bool] = mapped_column(default=False)  # read from a file, not frozen here
    # The dataset's sources then (catalog.select.versioned.sources_key): while they are
    # the same, no image can have changed, and reading the version checks no pixels.
    sources_key: Mapped[str] = mapped_column(String(64))


class VersionImage(Base):
    """One image of a version: its place, its pixels' digest and its label at the freeze."""

    __tablename__ = "version_images"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    index: Mapped[int] = mapped_column("idx", Integer, primary_key=True, autoincrement=False)
    image_id: Mapped[int] = mapped_column(Integer)  # the image's id at the freeze
    sha256: Mapped[str] = mapped_column(String(64))  # of its pixels
    label: Mapped[int | None] = mapped_column(LABEL)  # the label it had (None: unlabeled)
    decision_id: Mapped[int | None] = mapped_column(Integer)  # its latest decision then
