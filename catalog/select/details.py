"""One image at a time: by place, with everything the catalog knows about it, or
pixels by content digest.

The image page, thumbnails and the Python API read through here; it returns data
and knows the SQL, so the faces above it do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageState, ImageTag
from catalog.db.models.exports import ExportedFile
from catalog.db.models.images import Dataset, Image, Source
from catalog.errors import ImageNotFoundError, SelectionError
from catalog.facts.label_sets import label_set
from catalog.facts.metadata import metadata_of
from catalog.select.filters import CURRENT_LABEL, POSITION, dataset_id, with_state
from catalog.select.reads import pixel_columns
from catalog.select.records import ImageRow
from catalog.selection import Selection

SHA256 = re.compile(r"[0-9a-f]{64}")


def get_image(
    session: Session, dataset: str | None, split: str, index: int
) -> tuple[ImageRow, npt.NDArray[np.uint8]]:
    """One image by its split and index, with its pixels."""
    ds = dataset_id(session, dataset)
    row = session.execute(
        with_state(select(Dataset.name, *pixel_columns(Selection())))
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.dataset_id == ds, Image.split == split, Image.index == index)
    ).one_or_none()
    if row is None:
        name = session.scalar(select(Dataset.name).where(Dataset.id == ds))
        msg = f"No image {split}:{index} in dataset {name}"
        raise ImageNotFoundError(msg)
    pixels = np.frombuffer(row.pixels, dtype=np.uint8).reshape(row.height, row.width)
    tags = session.scalars(
        select(ImageTag.tag).where(ImageTag.image_id == row.id).order_by(ImageTag.tag)
    )
    image = ImageRow(
        row.id, row.name, row.split, row.idx, row.label, row.sha256, (), row.original_label,
        bool(row.excluded), tuple(tags), row.decision, label_set(session, ds).name(row.label),
        metadata_of(session, [row.id]).get(row.id, {}),
    )  # fmt: skip
    return image, pixels


@dataclass
class ImageDetails:
    """One image: its row and pixels, where it came from and where it was written."""

    row: ImageRow
    pixels: npt.NDArray[np.uint8]
    label_name: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.row.id, "dataset": self.row.dataset, "split": self.row.split,
            "index": self.row.index, "label": self.row.label, "label_name": self.label_name,
            "original_label": self.row.original_label, "excluded": self.row.excluded,
            "tags": list(self.row.tags), "decision": self.row.decision, "sha256": self.row.sha256,
            "height": int(self.pixels.shape[0]), "width": int(self.pixels.shape[1]),
            "sources": self.sources, "files": self.files,
        }  # fmt: skip


def image_details(session: Session, dataset: str | None, split: str, index: int) -> ImageDetails:
    """The image at ``split:index`` of ``dataset`` with its sources and exported files.

    Raises
    ------
    DatasetNotFoundError, ImageNotFoundError
        If there is no such dataset or image.
    """
    row, pixels = get_image(session, dataset, split, index)
    ds = dataset_id(session, row.dataset)
    sources = session.scalars(
        select(Source)
        .where(Source.dataset_id == ds, or_(Source.split == split, Source.split.is_(None)))
        .order_by(Source.id)
    )
    files = session.execute(
        select(ExportedFile.path, ExportedFile.format, ExportedFile.export_id,
               ExportedFile.size, ExportedFile.written_at)
        .where(ExportedFile.image_id == row.id)
        .order_by(ExportedFile.path)
    )  # fmt: skip
    return ImageDetails(
        row=row,
        pixels=pixels,
        label_name=label_set(session, ds).name(row.label),
        sources=[
            {
                "uri": s.uri,
                "format": s.format,
                "role": s.role,
                "split": s.split,
                "sha256": s.sha256,
                "genuine": s.genuine,
            }
            for s in sources
        ],
        files=[
            {
                "path": f.path,
                "format": f.format,
                "export": f.export_id,
                "size": f.size,
                "written_at": f.written_at.isoformat(timespec="seconds"),
            }
            for f in files
        ],
    )


def pixels_by_digest(session: Session, sha256: str) -> npt.NDArray[np.uint8]:
    """The pixels of an image whose content digest is ``sha256`` (any such image).

    Raises
    ------
    SelectionError
        If ``sha256`` is not 64 lowercase hex digits.
    ImageNotFoundError
        If no image has it.
    """
    if not SHA256.fullmatch(sha256):
        msg = f"{sha256[:80]!r} is not a sha256 digest: expected 64 lowercase hex digits"
        raise SelectionError(msg)
    row = session.execute(
        select(Image.height, Image.width, Image.pixels).where(Image.sha256 == sha256).limit(1)
    ).one_or_none()
    if row is None:
        msg = f"No image with sha256 {sha256} in the catalog"
        raise ImageNotFoundError(msg)
    return np.frombuffer(row.pixels, dtype=np.uint8).reshape(row.height, row.width)


def rows_by_id(session: Session, image_ids: list[int]) -> dict[int, ImageRow]:
    """The rows of images by catalog id, with their current labels and exclusion
    (ids not in the catalog are left out)."""
    query = with_state(
        select(Dataset.name, Image.id, Image.split, POSITION, CURRENT_LABEL.label("label"),
               Image.label.label("original"), Image.sha256, ImageState.excluded,
               ImageState.decision_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.id.in_(image_ids))
    )  # fmt: skip
    return {
        row.id: ImageRow(
            row.id,
            row.name,
            row.split,
            row.idx,
            row.label,
            row.sha256,
            (),
            row.original,
            bool(row.excluded),
            decision=row.decision_id,
        )
        for row in session.execute(query)
    }


def label_names(session: Session, dataset: str | None) -> dict[int, str]:
    """The name of each label of ``dataset`` (``{3: "3"}`` for digits)."""
    labels = label_set(session, dataset_id(session, dataset))
    return dict(zip(labels.numbers, labels.names, strict=True))
