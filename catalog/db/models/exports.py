"""Exports and the files they wrote: one row per run, one row per file on disk."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.models.base import Base, utcnow
from catalog.db.types import UTCDateTime


class Export(Base):
    """One run of ``export``: where, what selection, which layout and format."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    root: Mapped[str] = mapped_column(Text)  # absolute path of the export folder
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Output format: folder, idx, npz, parquet, webdataset (catalog.export.formats).
    output: Mapped[str] = mapped_column(String(16), default="folder", server_default="folder")
    layout: Mapped[str] = mapped_column(String(16))  # folder exports; "" for the others
    format: Mapped[str] = mapped_column(String(8))  # how images are encoded: png, ..., raw
    count: Mapped[int] = mapped_column(Integer, default=0)  # images in the export
    written: Mapped[int] = mapped_column(Integer, default=0)  # images this run wrote
    # The latest curation decision when the export ran (None: there were none).
    decision_id: Mapped[int | None] = mapped_column(Integer)


class ExportedFile(Base):
    """A file on disk written from an image; one row per path, the latest write.

    A container file (an IDX file, a shard ...) holds many images; its row names
    the first, and the export's ``manifest.csv`` lists the rest."""

    __tablename__ = "exported_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)  # absolute
    format: Mapped[str] = mapped_column(String(8))  # png, ...; idx, npz, parquet, tar
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # of the file bytes
    written_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
