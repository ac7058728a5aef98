"""What a dataset is identified against: a registry of reference images, and where
their pixels are in the catalog (to confirm lossy matches by pixels)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image, Source
from catalog.identity.confirm import Reference
from catalog.identity.registry import SHIPPED, Registry, load_shipped, registry_from_dataset
from catalog.identity.signature import digests_from_hex


def resolve_reference(
    session: Session,
    against: str,
    looked_up: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> Reference:
    """The registry for ``against`` and where its pixels are.

    A shipped name (``mnist``) uses the shipped registry; its pixels are those of
    a dataset in the catalog ingested from the genuine files, if any (matched
    image by image on digests). Any other name is a dataset of the catalog.
    ``looked_up`` is ``(dataset id, image ids, registry rows)`` of a dataset whose
    digests the caller looked up in the shipped registry already, not read again.
    """
    if against in SHIPPED:
        registry = load_shipped(against)
        return Reference.of(registry, _genuine_ids(session, registry, looked_up))
    registry = registry_from_dataset(session, against)
    assert registry.image_ids is not None
    return Reference.of(registry, registry.image_ids)


def _genuine_ids(
    session: Session,
    registry: Registry,
    looked_up: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> npt.NDArray[np.int64]:
    ids = np.full(len(registry), -1, dtype=np.int64)
    datasets = session.scalars(
        select(Source.dataset_id).where(Source.genuine.like(f"{registry.name}/%")).distinct()
    ).all()
    for ds in datasets:
        if looked_up is not None and looked_up[0] == ds:  # its digests are looked up already
            known = looked_up[2] >= 0
            ids[looked_up[2][known]] = looked_up[1][known]
            continue
        rows = (
            session.connection()
            .execute(select(Image.id, Image.sha256).where(Image.dataset_id == ds))
            .all()
        )
        if not rows:
            continue
        image_ids, digests = zip(*rows, strict=True)  # columns, not per-row attribute access
        at = registry.lookup(digests_from_hex(list(digests)))
        found = at >= 0
        ids[at[found]] = np.asarray(image_ids, dtype=np.int64)[found]
    return ids
