"""The pixels an audit looks at: one dataset's images as numpy blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.audit.features import InkMeasures, ink_measures
from catalog.audit.findings import ImageRef
from catalog.db import Image
from catalog.dbtypes import bytewise
from catalog.decision_log import reviewed_ids
from catalog.labelsets import label_set
from catalog.query import CURRENT_LABEL, dataset_id, with_state
from catalog.sources import UNLABELED


@dataclass
class DatasetImages:
    """All pixels of the audited images of one dataset, in (split, index) order."""

    name: str
    ids: npt.NDArray[np.int64]
    splits: npt.NDArray[np.str_]
    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    sha256: npt.NDArray[np.str_]
    pixels: npt.NDArray[np.uint8] | None  # None when sizes differ (see odd-images)
    shapes: npt.NDArray[np.int64]  # (n, 2)
    # ``labels`` are the current ones (after decisions); identity checks the source's.
    original_labels: npt.NDArray[np.int64]
    reviewed: npt.NDArray[np.bool_]  # relabelled, tagged "reviewed" or excluded: not judged
    label_numbers: tuple[int, ...] = ()  # the dataset's label set

    def ref(self, i: int) -> ImageRef:
        label = int(self.labels[i])
        return ImageRef(
            self.name, str(self.splits[i]), int(self.indices[i]),
            None if label == UNLABELED else label, str(self.sha256[i]),
        )  # fmt: skip

    def subset(self, keep: npt.NDArray[np.bool_]) -> DatasetImages:
        """The images where ``keep`` is true."""
        return DatasetImages(
            self.name, self.ids[keep], self.splits[keep], self.indices[keep], self.labels[keep],
            self.sha256[keep], None if self.pixels is None else self.pixels[keep],
            self.shapes[keep], self.original_labels[keep], self.reviewed[keep],
            self.label_numbers,
        )  # fmt: skip

    def refs(self, positions: Iterable[int]) -> list[ImageRef]:
        return [self.ref(int(i)) for i in positions]

    @cached_property
    def ink(self) -> InkMeasures:
        """Ink measures of ``pixels`` (uniform sizes only), computed once for every check."""
        if self.pixels is None:
            msg = f"{self.name}: images of different sizes have no ink measures"
            raise ValueError(msg)
        return ink_measures(self.pixels)


def load_images(session: Session, name: str, splits: Sequence[str]) -> DatasetImages:
    """Read one dataset's images (all, or of ``splits``) into numpy blocks."""
    ids, split_names, indices, labels, digests, shapes, originals = [], [], [], [], [], [], []
    blocks: list[npt.NDArray[np.uint8]] = []
    ds = dataset_id(session, name)
    query = (
        with_state(select(Image.id, Image.split, Image.index, CURRENT_LABEL, Image.sha256,
                          Image.height, Image.width, Image.pixels, Image.label))
        .where(Image.dataset_id == ds)
        .order_by(bytewise(Image.split), Image.index)
    )  # fmt: skip
    if splits:
        query = query.where(Image.split.in_(splits))
    uniform = True
    first_shape: tuple[int, int] | None = None
    for rows in session.execute(query.execution_options(yield_per=8192)).partitions(8192):
        for row in rows:
            ids.append(row[0])
            split_names.append(row[1])
            indices.append(row[2])
            labels.append(UNLABELED if row[3] is None else row[3])
            digests.append(row[4])
            originals.append(UNLABELED if row[8] is None else row[8])
            shapes.append((row[5], row[6]))
            first_shape = first_shape or (row[5], row[6])
            if (row[5], row[6]) != first_shape or len(row[7]) != row[5] * row[6]:
                uniform = False
        if uniform and first_shape is not None:
            data = b"".join(row[7] for row in rows)
            blocks.append(np.frombuffer(data, dtype=np.uint8).reshape(len(rows), *first_shape))
    pixels: npt.NDArray[np.uint8] | None
    if not uniform:
        pixels = None
    elif blocks:
        pixels = np.concatenate(blocks)
    else:
        pixels = np.zeros((0, 28, 28), dtype=np.uint8)
    id_array = np.asarray(ids, dtype=np.int64)
    return DatasetImages(
        name=name,
        ids=id_array,
        splits=np.asarray(split_names, dtype=np.str_),
        indices=np.asarray(indices, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int64),
        sha256=np.asarray(digests, dtype=np.str_),
        pixels=pixels,
        shapes=np.asarray(shapes, dtype=np.int64).reshape(-1, 2),
        original_labels=np.asarray(originals, dtype=np.int64),
        reviewed=np.isin(id_array, reviewed_ids(session)),
        label_numbers=label_set(session, ds).numbers,
    )
