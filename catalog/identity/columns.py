"""What identify reads of a dataset's images: ids, places, labels, digests, sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.db.models.images import Dataset, Image
from catalog.identity.registry import LABEL
from catalog.identity.signature import digests_from_hex
from catalog.select.filters import POSITION, label_column, selection_dataset, with_state
from catalog.select.versioned import check_pinned
from catalog.selection import Selection
from catalog.sources import UNLABELED


@dataclass(frozen=True)
class ImageColumns:
    """What identify reads of each image of a dataset, in (split, index) order."""

    ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]  # current labels (decisions applied), UNLABELED for none
    digests: npt.NDArray[np.uint64]  # the first 64 bits of each sha256
    heights: npt.NDArray[np.int64]
    widths: npt.NDArray[np.int64]


def image_columns(session: Session, ds: int, within: Selection | None = None) -> ImageColumns:
    """The columns identify reads of every image of dataset ``ds`` (of ``within``'s version
    only, with its frozen labels, if it names one), in (split, index) order."""
    label = LABEL
    if within is not None and within.version is not None:
        label = func.coalesce(label_column(within), UNLABELED)
    rows = session.connection().execute(
        with_state(select(Image.id, Image.split, POSITION, label, Image.sha256, Image.height,
                          Image.width), within)
        .where(Image.dataset_id == ds)
        .order_by(Image.split, Image.index)
    ).all()  # fmt: skip
    n = len(rows)
    # One transposition of the rows into columns (attribute access per row costs more).
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    return ImageColumns(
        np.asarray(columns[0], dtype=np.int64).reshape(n),
        np.asarray(columns[1], dtype=np.str_).reshape(n),
        np.asarray(columns[2], dtype=np.int64).reshape(n),
        np.asarray(columns[3], dtype=np.int64).reshape(n),
        digests_from_hex(list(columns[4])),
        np.asarray(columns[5], dtype=np.int64).reshape(n),
        np.asarray(columns[6], dtype=np.int64).reshape(n),
    )


def version_columns(
    session: Session, dataset: str | None, version: str
) -> tuple[str, ImageColumns]:
    """The name of ``version``'s dataset and the columns of its images (refused if a pixel
    it froze changed since: :func:`catalog.select.filters.check_pinned`)."""
    within = Selection(dataset=dataset, version=version)
    ds = selection_dataset(session, within)
    check_pinned(session, within, ds)
    return dataset_name(session, ds), image_columns(session, ds, within)


def dataset_name(session: Session, ds: int) -> str:
    """The name of the dataset with id ``ds``."""
    return str(session.scalar(select(Dataset.name).where(Dataset.id == ds)))
