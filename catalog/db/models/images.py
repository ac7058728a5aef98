"""The core tables: datasets, the source files they were decoded from, and their images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db.models.base import Base, utcnow
from catalog.db.types import LABEL, UTCDateTime


class Dataset(Base):
    """A named collection of images, split into train/test/... ."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: Where the label set's names came from: "digits", "fashion-mnist", ...
    label_set: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    sources: Mapped[list[Source]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )


class Source(Base):
    """One file (or folder) that images of a dataset were decoded from."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    uri: Mapped[str] = mapped_column(Text)  # path or URL as given
    split: Mapped[str | None] = mapped_column(String(32))  # None when it holds several splits
    format: Mapped[str] = mapped_column(String(32))  # idx, pickle, npz, folder/classic, ...
    role: Mapped[str] = mapped_column(String(32), default="")  # "train images", ...
    size: Mapped[int] = mapped_column(BigInteger)  # bytes on disk
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # decoded content
    md5: Mapped[str] = mapped_column(String(32))  # decoded content
    file_md5: Mapped[str | None] = mapped_column(String(32))  # the bytes on disk (the .gz)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    genuine: Mapped[str | None] = mapped_column(String(96))  # "mnist/train-images-idx3-ubyte.gz"
    note: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="sources")


class Image(Base):
    """One decoded image: its place in the dataset, its label and its pixels."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("dataset_id", "split", "idx", name="uq_images_dataset_split_idx"),
        # With idx last, one label of one split is read in index order, no sort.
        Index("ix_images_dataset_split_label_idx", "dataset_id", "split", "label", "idx"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(32))
    index: Mapped[int] = mapped_column("idx", Integer)  # position in its split, source order
    label: Mapped[int | None] = mapped_column(LABEL)  # None: published without one
    height: Mapped[int] = mapped_column(SmallInteger)
    width: Mapped[int] = mapped_column(SmallInteger)
    pixels: Mapped[bytes] = mapped_column(LargeBinary)  # uint8, row-major
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of ``pixels``
