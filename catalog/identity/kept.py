"""Identity matches kept per image, so the next audit searches only images it has not seen.

A lossy match or a *none* depends on the image's pixels and on the reference: the shipped
registry, and which of its images have genuine pixels in the catalog (those confirm by
pixels, the others by signature). The kind of a kept record names both
(``identify-mnist-<8 hex digits>-v1``), so ingesting or deleting genuine MNIST files makes
the next run search again rather than reuse an answer reached another way. Exact
matches are not kept: a digest lookup is cheaper than reading a record. Matches against
a dataset of the catalog are not kept either: that reference changes with the catalog.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from catalog.facts.measures import read_measures, write_measures
from catalog.identity.confirm import Columns, Reference
from catalog.identity.registry import SHIPPED

#: One kept match, little-endian (the layout is part of the kind's version).
RECORD = np.dtype(
    [("kind", "u1"), ("confirmed", "u1"), ("position", "<i4"), ("error", "<f4"),
     ("gain", "<f4"), ("shift", "i1", (2,)), ("distance", "<f4"), ("stretched", "u1")]
)  # fmt: skip
VERSION = "v1"


@dataclass(frozen=True)
class Keeper:
    """Reads and keeps the matches of one dataset's images against one reference."""

    session: Session
    kind: str
    dataset: int

    @classmethod
    def of(cls, session: Session, reference: Reference, dataset: int) -> Keeper | None:
        """The keeper for ``reference``; None when it is not a shipped registry."""
        registry = reference.registry
        if registry.name not in SHIPPED or registry.image_ids is not None:
            return None
        with_pixels = np.packbits(reference.image_ids >= 0).tobytes()
        tag = hashlib.sha256(with_pixels).hexdigest()[:8]
        return cls(session, f"identify-{registry.name}-{tag}-{VERSION}", dataset)

    def read(
        self, ids: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], cols: Columns
    ) -> npt.NDArray[np.bool_]:
        """Fill ``cols`` at ``rows`` for the images (``ids``) with a kept match; which had one."""
        found, records = read_measures(self.session, self.kind, self.dataset, ids, RECORD)
        at = rows[found]
        cols.kinds[at] = records["kind"]
        cols.confirmed[at] = records["confirmed"]
        cols.positions[at] = records["position"]
        cols.errors[at] = records["error"]
        cols.gains[at] = records["gain"]
        cols.shifts[at] = records["shift"]
        cols.distances[at] = records["distance"]
        cols.stretched[at] = records["stretched"]
        return found

    def write(self, ids: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], cols: Columns) -> bool:
        """Keep the matches at ``rows`` of ``cols`` for images ``ids``; False if refused."""
        records = np.zeros(len(rows), RECORD)
        records["kind"] = cols.kinds[rows]
        records["confirmed"] = cols.confirmed[rows]
        records["position"] = cols.positions[rows]
        records["error"] = cols.errors[rows]
        records["gain"] = cols.gains[rows]
        records["shift"] = cols.shifts[rows]
        records["distance"] = cols.distances[rows]
        records["stretched"] = cols.stretched[rows]
        return write_measures(self.session, self.kind, ids, records)
